// Package repository is the backup repository format: exported collection snapshots
// in a bucket (any S3 endpoint), described well enough that a brand-new cluster — or
// a person with an S3 client, zstd and jq — can restore them with no catalog. The
// format is specified in docs/REPOSITORY-FORMAT.md; in short, under a prefix P:
//
//	P/snapkeep-repository          the marker (JSON): format, version, repository id, writer cluster
//	P/index/<20-digit generation>  the index, one immutable object per generation
//	P/snapshots/<id>.skm           each exported snapshot's manifest, the source's bytes
//	P/data/<cluster>/<rel>         the data objects, at their source-root-relative keys
//
// # Use
//
// Init creates a repository (or opens the one there) and Open opens one; both read the
// marker. Latest reads the newest index generation, Snapshot finds an entry in it, and
// Update changes it with a compare-and-swap on the next generation's key. An export
// copies data objects to Keys.Data and the manifest to Keys.Manifest, then adds an
// Entry (NewEntry builds it from the manifest) with Update. A restore reads an entry,
// opens its manifest (OpenManifest) and copies what Files lists. Verify checks a
// repository against its latest index; Collect deletes what it no longer references.
//
// # Choices
//
//   - Entries are sorted by id (a random UUID), so an index is deterministic and a
//     lookup is a binary search; sort by ExportedAt for display.
//   - uint64 ids are JSON strings and the manifest's xxhash64 is 16 hex digits, as
//     xxh64sum prints it: readers that treat JSON numbers as doubles keep them exact.
//   - The frame's CRC-32C covers the version, flags and length fields as well as the
//     body, so a damaged version field reads as corruption, not as a newer format.
//   - OpenManifest holds the manifest in memory (about 8.5 bytes per file; at most
//     MaxManifestSize): it must read all of it to check its xxhash64 anyway, and a
//     reader wants random access.
//   - Verify and Collect keep referenced data keys as fingerprints (96 and 64 bits),
//     not strings: 24 and 8 bytes per key, for repositories of millions of files.
//
// # Errors and concurrency
//
// Errors about the repository's content wrap ErrNotARepository, ErrCorrupt,
// ErrUnsupportedVersion, ErrOtherWriter or ErrNotFound (errors.Is) and name the key;
// store errors are wrapped with %w (objstore.ErrNotFound and the like still match).
// Nothing panics on bad input: DecodeIndex and DecodeMarker are fuzzed.
//
// A Repository is safe for concurrent use and holds no state but the marker read at
// Open: every call reads the store. Index, Entry, Marker, File and the reports are
// plain values. Updates from any number of processes of the writer cluster are
// serialised by the conditional create; Collect must not run twice at once on one
// repository.
package repository
