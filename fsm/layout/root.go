package layout

import "strings"

// Root is the storage root of a cluster: every key in the replicated state is relative
// to it, and the bucket's full key is the root, a slash and that key. "" is the
// bucket's top; otherwise it has no slash at either end.
type Root string

// Full is the bucket key of a root-relative key.
func (r Root) Full(rel string) string {
	if r == "" {
		return rel
	}
	return string(r) + "/" + rel
}

// FullPrefix is Full for a prefix, with "" kept "" (a Milvus-layout segment has none).
func (r Root) FullPrefix(prefix string) string {
	if prefix == "" {
		return ""
	}
	return r.Full(prefix)
}

// Relative strips the root from a bucket key; false when the key is outside the root.
func (r Root) Relative(key string) (string, bool) {
	if r == "" {
		return key, true
	}
	return strings.CutPrefix(key, string(r)+"/")
}

// FullQuoted puts the root back in front of the root-relative keys a message of the
// replicated state quotes ("collections/...", "snapshots/..." and Milvus's
// directories), so a user reads the keys as they are in the bucket.
func (r Root) FullQuoted(msg string) string {
	if r == "" {
		return msg
	}
	for _, top := range append([]string{"collections/", "snapshots/"}, MilvusDirs()...) {
		msg = strings.ReplaceAll(msg, `"`+top, `"`+string(r)+"/"+top)
	}
	return msg
}
