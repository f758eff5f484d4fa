package repository

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/snapkeep/snapkeep/objstore"
)

// Marker is the repository's format marker, P/snapkeep-repository. A plain value.
type Marker struct {
	// Format is always FormatName; Version the format version (1).
	Format  string `json:"format"`
	Version int    `json:"version"`
	// RepositoryID is a random UUID chosen when the repository was created; every
	// index generation repeats it.
	RepositoryID string `json:"repository_id"`
	// CreatedAt is when the marker was written (UTC).
	CreatedAt time.Time `json:"created_at"`
	// WriterClusterID is the one cluster allowed to update the repository; empty for
	// a repository made read-only.
	WriterClusterID string `json:"writer_cluster_id"`
}

// maxMarkerBytes bounds what is read of a marker object.
const maxMarkerBytes = 64 << 10

// encodeMarker is the marker's JSON, indented, with a final newline.
func encodeMarker(m Marker) ([]byte, error) {
	m.CreatedAt = utc(m.CreatedAt)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("repository: encode marker: %w", err)
	}
	return append(b, '\n'), nil
}

// DecodeMarker decodes and checks a format marker. A marker of another format (or no
// JSON object with "format" at all) gives ErrNotARepository; a newer version
// ErrUnsupportedVersion; bad JSON or values ErrCorrupt. Unknown fields are ignored.
// It never panics. Safe for concurrent use.
func DecodeMarker(b []byte) (Marker, error) {
	var head struct {
		Format  *string `json:"format"`
		Version *int    `json:"version"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return Marker{}, fmt.Errorf("%w: marker: JSON: %v", ErrCorrupt, err)
	}
	switch {
	case head.Format == nil:
		return Marker{}, fmt.Errorf("%w: the marker has no \"format\" field", ErrNotARepository)
	case *head.Format != FormatName:
		return Marker{}, fmt.Errorf("%w: the marker's format is %q, not %q", ErrNotARepository, *head.Format, FormatName)
	case head.Version == nil || *head.Version < 1:
		return Marker{}, fmt.Errorf("%w: marker: no valid version", ErrCorrupt)
	case *head.Version > Version:
		return Marker{}, fmt.Errorf("%w: the marker says format version %d; this reader supports versions 1 to %d (upgrade snapkeep to read it)",
			ErrUnsupportedVersion, *head.Version, Version)
	}
	var m Marker
	if err := json.Unmarshal(b, &m); err != nil {
		return Marker{}, fmt.Errorf("%w: marker: JSON: %v", ErrCorrupt, err)
	}
	m.CreatedAt = utc(m.CreatedAt)
	switch {
	case !ValidID(m.RepositoryID):
		return Marker{}, fmt.Errorf("%w: marker: repository_id %q is not a UUID", ErrCorrupt, m.RepositoryID)
	case m.CreatedAt.IsZero():
		return Marker{}, fmt.Errorf("%w: marker: created_at is missing", ErrCorrupt)
	}
	if err := checkTime("created_at", m.CreatedAt); err != nil {
		return Marker{}, fmt.Errorf("%w: marker: %v", ErrCorrupt, err)
	}
	if m.WriterClusterID != "" {
		if err := CheckClusterID(m.WriterClusterID); err != nil {
			return Marker{}, fmt.Errorf("%w: marker: writer_cluster_id: %v", ErrCorrupt, err)
		}
	}
	return m, nil
}

// readMarker reads and decodes the marker under keys.
func readMarker(ctx context.Context, store objstore.Store, keys Keys) (Marker, error) {
	key := keys.Marker()
	b, err := readSmall(ctx, store, key, maxMarkerBytes)
	if errors.Is(err, objstore.ErrNotFound) {
		return Marker{}, fmt.Errorf("%w: no marker %q (Init creates one): %w", ErrNotARepository, key, err)
	}
	if err != nil {
		return Marker{}, fmt.Errorf("repository: read marker: %w", err)
	}
	m, err := DecodeMarker(b)
	if err != nil {
		return Marker{}, fmt.Errorf("repository marker %q: %w", key, err)
	}
	return m, nil
}

// readSmall reads a whole object of at most limit bytes; a longer one is ErrCorrupt.
func readSmall(ctx context.Context, store objstore.Store, key string, limit int64) ([]byte, error) {
	rc, _, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", key, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %q is larger than %d bytes", ErrCorrupt, key, limit)
	}
	return b, nil
}

// Init makes the prefix a repository written by writerCluster, or opens the one
// already there. It creates the marker with a conditional create (If-None-Match), so
// of several clusters initialising one prefix at once exactly one marker wins (on a
// server honouring the condition); created says whether it was this call's. The caller
// compares Marker().WriterClusterID with its own id: a repository another cluster
// created is returned as it is, and Update refuses this cluster (ErrOtherWriter).
//
// A prefix that holds objects but no marker is refused (ErrNotARepository), so a
// repository is never made over someone else's data. The marker is read back after
// the create: on a server that ignores If-None-Match, a concurrent Init by another
// cluster that overwrote it shows up as created == false with the other marker
// (unless its write comes after the read-back: see docs/REPOSITORY-FORMAT.md).
//
// Init is safe to call concurrently, from any number of processes.
func Init(ctx context.Context, store objstore.Store, prefix, writerCluster string, now time.Time, opts Options) (*Repository, bool, error) {
	if err := CheckClusterID(writerCluster); err != nil {
		return nil, false, fmt.Errorf("repository: init: writer: %w", err)
	}
	keys := NewKeys(prefix)
	r, err := Open(ctx, store, prefix, opts)
	if err == nil || !errors.Is(err, objstore.ErrNotFound) {
		return r, false, err
	}
	page, err := store.List(ctx, keys.Prefix(), "", 1)
	if err != nil {
		return nil, false, fmt.Errorf("repository: init: list %q: %w", keys.Prefix(), err)
	}
	if len(page.Objects) > 0 {
		// Another Init may have just written its marker: that is a repository.
		r, err := Open(ctx, store, prefix, opts)
		if err == nil || !errors.Is(err, objstore.ErrNotFound) {
			return r, false, err
		}
		return nil, false, fmt.Errorf("%w: prefix %q holds objects (%q) but no marker: choose an empty prefix",
			ErrNotARepository, keys.Prefix(), page.Objects[0].Key)
	}
	m := Marker{Format: FormatName, Version: Version, RepositoryID: NewID(), CreatedAt: utc(now), WriterClusterID: writerCluster}
	b, err := encodeMarker(m)
	if err != nil {
		return nil, false, err
	}
	_, err = store.Put(ctx, keys.Marker(), bytes.NewReader(b), int64(len(b)), objstore.PutOptions{IfNoneMatch: true, ContentType: "application/json"})
	if errors.Is(err, objstore.ErrPreconditionFailed) {
		r, err := Open(ctx, store, prefix, opts)
		return r, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("repository: init: create marker %q: %w", keys.Marker(), err)
	}
	r, err = Open(ctx, store, prefix, opts)
	if err != nil {
		return nil, false, err
	}
	created := r.marker.RepositoryID == m.RepositoryID
	if created {
		r.log.Info("repository created", "prefix", keys.Prefix(), "repository_id", m.RepositoryID, "writer_cluster_id", writerCluster)
	} else {
		r.log.Warn("repository marker overwritten by a concurrent Init (the server ignored If-None-Match)",
			"prefix", keys.Prefix(), "ours", m.RepositoryID, "stored", r.marker.RepositoryID)
	}
	return r, created, nil
}
