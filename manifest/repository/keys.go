package repository

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Object keys under a repository's prefix P (docs/REPOSITORY-FORMAT.md):
//
//	P/snapkeep-repository              the format marker (JSON)
//	P/index/<generation, 20 digits>     index generations 1, 2, … (written with If-None-Match)
//	P/snapshots/<snapshot id>.skm       an exported snapshot's manifest, the cluster's bytes
//	P/data/<cluster id>/<key>           data objects: <key> is the file's key relative to
//	                                    its source cluster's storage root

// Keys builds a repository's object keys under its prefix. A Keys is a plain value,
// safe for concurrent use.
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
func (k Keys) Marker() string { return k.prefix + markerName }

// IndexPrefix is the prefix every index generation's key starts with.
func (k Keys) IndexPrefix() string { return k.prefix + "index/" }

// Index is generation gen's key (gen ≥ 1).
func (k Keys) Index(gen uint64) string { return fmt.Sprintf("%s%020d", k.IndexPrefix(), gen) }

// ManifestPrefix is the prefix every exported manifest's key starts with.
func (k Keys) ManifestPrefix() string { return k.prefix + manifestDir }

// Manifest is the key of the manifest of the repository snapshot id.
func (k Keys) Manifest(id string) string { return k.prefix + ManifestRel(id) }

// DataPrefix is the prefix of every data object a cluster exported; cluster "" gives
// the prefix of all data objects.
func (k Keys) DataPrefix(cluster string) string {
	if cluster == "" {
		return k.prefix + dataDir
	}
	return k.prefix + dataDir + cluster + "/"
}

// Data is the key of the data object holding the file rel (relative to the source
// cluster's storage root) of cluster.
func (k Keys) Data(cluster, rel string) string { return k.DataPrefix(cluster) + rel }

// Full is the full key of a key relative to the prefix (an Entry's ManifestKey).
func (k Keys) Full(rel string) string { return k.prefix + rel }

const (
	markerName  = "snapkeep-repository"
	indexDir    = "index/"
	manifestDir = "snapshots/"
	manifestExt = ".skm"
	dataDir     = "data/"
	genDigits   = 20
)

// ManifestRel is the key, relative to the repository's prefix, of the manifest of the
// repository snapshot id: what an Entry's ManifestKey must be.
func ManifestRel(id string) string { return manifestDir + id + manifestExt }

// KeyKind says what a key under a repository's prefix is.
type KeyKind int

const (
	// KeyUnknown is a key under the prefix that is none of the others: not written
	// by this format (or damaged). Readers report such keys and otherwise leave them
	// alone.
	KeyUnknown KeyKind = iota
	// KeyMarker is the format marker.
	KeyMarker
	// KeyIndex is an index generation (KeyInfo.Generation).
	KeyIndex
	// KeyManifest is an exported snapshot's manifest (KeyInfo.Snapshot).
	KeyManifest
	// KeyData is a data object (KeyInfo.Cluster and KeyInfo.Rel).
	KeyData
)

func (k KeyKind) String() string {
	switch k {
	case KeyMarker:
		return "marker"
	case KeyIndex:
		return "index"
	case KeyManifest:
		return "manifest"
	case KeyData:
		return "data"
	}
	return "unknown"
}

// KeyInfo is what Parse found in a key.
type KeyInfo struct {
	Kind KeyKind
	// Generation is an index generation's number (≥ 1).
	Generation uint64
	// Snapshot is the repository snapshot id of a manifest.
	Snapshot string
	// Cluster and Rel name a data object's source cluster and its key relative to
	// that cluster's storage root.
	Cluster, Rel string
}

// Parse classifies a key. ok is false when the key is not under the prefix; a key
// under it that is none of the format's is KeyUnknown. Parse takes any string (keys
// come from listings) and never panics.
func (k Keys) Parse(key string) (info KeyInfo, ok bool) {
	rest, ok := strings.CutPrefix(key, k.prefix)
	if !ok {
		return KeyInfo{}, false
	}
	switch {
	case rest == markerName:
		return KeyInfo{Kind: KeyMarker}, true
	case strings.HasPrefix(rest, indexDir):
		if gen, ok := parseGeneration(rest[len(indexDir):]); ok {
			return KeyInfo{Kind: KeyIndex, Generation: gen}, true
		}
	case strings.HasPrefix(rest, manifestDir):
		id, ok := strings.CutSuffix(rest[len(manifestDir):], manifestExt)
		if ok && ValidID(id) {
			return KeyInfo{Kind: KeyManifest, Snapshot: id}, true
		}
	case strings.HasPrefix(rest, dataDir):
		cluster, rel, ok := strings.Cut(rest[len(dataDir):], "/")
		if ok && rel != "" && CheckClusterID(cluster) == nil {
			return KeyInfo{Kind: KeyData, Cluster: cluster, Rel: rel}, true
		}
	}
	return KeyInfo{Kind: KeyUnknown}, true
}

// parseGeneration parses exactly 20 decimal digits naming a generation ≥ 1.
func parseGeneration(s string) (uint64, bool) {
	if len(s) != genDigits {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, n >= 1
}

// MaxClusterIDLen is the longest cluster id the format accepts.
const MaxClusterIDLen = 128

// CheckClusterID checks a cluster id as the format requires of writer_cluster_id and
// source_cluster_id (and of the path component in data keys): 1 to 128 bytes of ASCII
// letters, digits, '.', '_' and '-', other than "." and "..". A UUID or a host name
// fits.
func CheckClusterID(id string) error {
	if id == "" {
		return fmt.Errorf("empty cluster id")
	}
	if len(id) > MaxClusterIDLen {
		return fmt.Errorf("cluster id of %d bytes: at most %d", len(id), MaxClusterIDLen)
	}
	if id == "." || id == ".." {
		return fmt.Errorf("cluster id %q is not allowed", id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			if utf8.ValidString(id) {
				return fmt.Errorf("cluster id %q: only ASCII letters, digits, '.', '_' and '-' are allowed", id)
			}
			return fmt.Errorf("cluster id %q is not valid UTF-8", id)
		}
	}
	return nil
}

// ValidID reports whether id is a UUID in canonical form: 36 characters, lowercase
// hexadecimal digits in groups of 8, 4, 4, 4 and 12 separated by '-'. Repository ids and
// repository snapshot ids have this form (NewID makes them).
func ValidID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
	}
	return true
}
