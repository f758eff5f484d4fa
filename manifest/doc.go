// Package manifest is snapkeep's manifest format: the one object in object storage
// that lists every segment a collection snapshot captured, with its files and index
// builds. The snapshot's metadata lives in the FSM; the manifest is what a restore
// copies from. DESIGN.md in this directory explains the choices and the measurements.
//
// # Use
//
// A writer streams: NewWriter writes the header, Add appends segments in (partition
// id, segment id) order, Close writes the last block and the footer and returns the
// size, the xxhash64 of the whole object and a summary. A reader opens with two range
// reads (the end, then the start), then Segments reads only the blocks of the
// partitions asked for, several at a time, and hands the segments to a callback in
// order. Verify reads everything and checks everything. Dump writes it all as JSON.
//
// File lists are carried in the FSM's own encoding (fsm/filelist), copied byte for
// byte: a segment record holds the blob the FSM keeps for the segment and, for each
// index build, the build's blob. Each entry keeps the part of the key its key layout
// (fsm/layout, named in the header) does not build from the owner's ids; Reader.Files
// builds the full root-relative keys. Decode the blobs with filelist.ForEach or
// filelist.Decode.
//
// # Layout, format versions 1 and 2
//
// Version 2 is version 1 with the header's key_layout set: a manifest of a
// Milvus-layout collection is written as version 2 (so a version-1 reader refuses it
// rather than build snapkeep keys from Milvus file lists), one of a snapkeep-layout
// collection as version 1. A reader refuses a version that disagrees between the two
// ends or with the header's layout as corrupt.
//
// Fixed-width integers are little-endian; uvarint is encoding/binary's unsigned
// varint; xxhash64 is XXH64 with seed 0.
//
//	offset   size  content
//	0        8     magic "SNAPKMAN"
//	8        1     format version: 1 or 2
//	9        4     H: length of the header (uint32, at most MaxHeaderBytes)
//	13       H     the header: manifestpb.Header, protobuf (deterministic encoding)
//	13+H     8     header checksum: xxhash64 of bytes [0, 13+H)
//	B=21+H   ...   the body: the blocks, back to back, in (partition id, segment id) order
//	F        L     the footer: manifestpb.Footer, protobuf
//	F+L      8     footer checksum: xxhash64 of the L footer bytes
//	F+L+8    4     L: length of the footer (uint32, at most MaxFooterBytes)
//	F+L+12   1     format version: the same as at offset 8
//	F+L+13   8     magic "SNAPKMAN"; the object ends here (its size is F+L+21)
//
// Every format version keeps magic and version byte at both ends, so any reader can
// tell a manifest of a newer version from a damaged one.
//
// A block is one zstd frame (content size recorded, no zstd checksum) of at most
// MaxBlockBytes once decompressed. It holds the records of consecutive segments of one
// partition, in increasing id order; the writer closes a block when its records reach
// the target size (WriterOptions.BlockSize, 1 MiB by default) or the partition
// changes. A segment record is:
//
//	uvarint  segment id minus the previous record's id in the block (the first: the id); ≥ 1
//	uvarint  row count (≤ 2^63-1)
//	uvarint  n, then n bytes: the segment's file list (n = 0: no files)
//	uvarint  k: number of index builds, then k times:
//	           uvarint build id | uvarint index id | uvarint n, then n bytes: the build's file list
//
// The footer holds, per block: offset, compressed and uncompressed size, partition id,
// number of segments, first and last segment id, rows, files, bytes, index builds and
// the xxhash64 of the compressed bytes; then the totals (segments, rows, files, bytes,
// index builds, files and bytes by file kind), the body offset B, the header checksum
// again, and the "body" checksum: xxhash64 of bytes [0, F). Index build files count
// as files (of kind FILE_KIND_INDEX).
//
// Result.Checksum and Report.Checksum are the xxhash64 of the whole object, bytes
// [0, size): the figure the FSM records at SnapshotCommit, and what `xxh64sum`
// prints.
//
// # Checks
//
// Every byte is covered by a checksum: the header's, a block's, or the footer's (the
// trailer's length field by the footer's checksum, since a wrong length selects the
// wrong bytes). Open checks the trailer, footer and header, and that the footer
// agrees with itself and the header: the blocks tile the body exactly, in order, with
// possible sizes and counts, in partitions the header lists, summing to the totals.
// Segments checks each block it reads: its checksum, its decompressed size, every
// record against the bytes left (nothing is allocated from a length or count read
// from the input before it is checked against what the input can hold), each file
// list's header (filelist.Count), and ids and counts against the footer. Verify adds
// the body checksum, decodes every file list entry by entry and checks bytes and
// totals by kind. Any failure is an error wrapping ErrCorrupt that says where (header,
// block N at offset X, footer, trailer); a version byte above Version is an error
// wrapping ErrUnsupportedVersion that names the version found and the one supported.
//
// # Concurrency
//
// A Writer is for one goroutine. A Reader is safe for concurrent use. Verify and Dump
// may run concurrently with anything. Segment, IndexBuild, Summary, KindTotals,
// BlockInfo, Result, Report and the option structs are plain values without
// synchronization: share them read-only. Compression and decompression use encoders
// and decoders shared by the whole process.
package manifest
