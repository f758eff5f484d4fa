package repository

import (
	"fmt"
	"strings"
)

// Object keys under a repository's prefix P (docs/REPOSITORY-FORMAT.md):
//
//	P/snapkeep-repository              the format marker (JSON)
//	P/index/<generation, 20 digits>     index generations 1, 2, … (written with If-None-Match)
//	P/snapshots/<snapshot id>.skm       an exported snapshot's manifest, the cluster's bytes
//	P/data/<cluster id>/<key>           data objects: <key> is the file's key relative to
//	                                    its source cluster's storage root

// Keys builds a repository's object keys under its prefix.
type Keys struct {
	prefix string // "" or ending in "/"
}

// NewKeys returns the keys of a repository under prefix ("" for the bucket's root; a
// trailing slash is added when missing).
func NewKeys(prefix string) Keys {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return Keys{prefix: prefix}
}

// Prefix is the repository's prefix ("" or ending in "/").
func (k Keys) Prefix() string { return k.prefix }

// Marker is the format marker's key.
func (k Keys) Marker() string { return k.prefix + "snapkeep-repository" }

// IndexPrefix is the prefix every index generation's key starts with.
func (k Keys) IndexPrefix() string { return k.prefix + "index/" }

// Index is generation gen's key (gen ≥ 1).
func (k Keys) Index(gen uint64) string { return fmt.Sprintf("%s%020d", k.IndexPrefix(), gen) }

// ManifestPrefix is the prefix every exported manifest's key starts with.
func (k Keys) ManifestPrefix() string { return k.prefix + "snapshots/" }

// Manifest is the key of the manifest of the repository snapshot id.
func (k Keys) Manifest(id string) string { return k.ManifestPrefix() + id + ".skm" }

// DataPrefix is the prefix of every data object a cluster exported; cluster "" gives
// the prefix of all data objects.
func (k Keys) DataPrefix(cluster string) string {
	if cluster == "" {
		return k.prefix + "data/"
	}
	return k.prefix + "data/" + cluster + "/"
}

// Data is the key of the data object holding the file rel (relative to the source
// cluster's storage root) of cluster.
func (k Keys) Data(cluster, rel string) string { return k.DataPrefix(cluster) + rel }
