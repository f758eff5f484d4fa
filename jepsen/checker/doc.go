// The checkers, in the order All returns them:
//
//  1. linearizable-registry (Registry): porcupine over the snapshot registry,
//     partitioned per (collection, name).
//  2. linearizable-catalog (Catalog): porcupine over the segment catalog, partitioned
//     per segment id.
//  3. lost-undone (LostUndone): against the healed cluster.
//  4. bucket-audit (BucketAudit): against the healed cluster and its bucket.
//  5. restores (Restores): against the healed cluster and its bucket.
//  6. repository (Repository): against the healed cluster and the repository.
//  7. fsck (Fsck): the cluster's own deep integrity check, against the healed cluster.
//  8. policy (Policy): the policies workload's history and, from the healed cluster,
//     each policy and its snapshots.
//  9. convergence (Convergence): EndState.NodeHashes and NodeErrors.
//  10. log-matching (LogMatching): the stopped nodes' Raft logs.
//
// # Outcomes
//
// A checker returns violations for broken guarantees and an error when it could not
// run. A porcupine search that ran out of its time budget (Registry.Timeout,
// Catalog.Timeout, DefaultTimeout per partition) is neither: the checker returns the
// violations it did find and an error wrapping ErrUnknown naming the undecided
// partitions; the harness must report that checker as "unknown" (test with
// errors.Is), not as passed and not as a violation. On a violation the linearizability
// checkers write porcupine's visualization, <checker>-<partition>.html, into OutDir and
// name it in Violation.Artifact; OpIDs are the operations porcupine could not place
// (the ones that could have come next after its longest partial linearization).
//
// # What the checkers expect of the history
//
// Times: Call and Return on the history's clock. An operation whose outcome is
// Unknown (or still pending: Return 0) is given a return time after the end of the
// history, so porcupine may place it anywhere after its call, "never" included. Reads
// (describe, list, get) that are Unknown or Fail (other than not found) carry no
// information and are left out.
//
// snapshot-create: Input Collection, Name. OK only when the synchronous create
// returned the snapshot COMMITTED, with Output.SnapshotID. A Fail whose Error contains
// "already exists" means the name was PENDING or COMMITTED (no change). Any other Fail
// (for example the snapshot given up or dropped while pending) may have made a PENDING
// snapshot that was then given up within the call. Unknown: may have made a snapshot
// that is PENDING, COMMITTED or given up.
//
// snapshot-drop: Input Collection, Name. OK with Output.Existed as returned. A drop that
// reported Existed may also find the name already free (two concurrent drops both
// report it: the server reads, then proposes MarkDeleting, which succeeds on a
// DELETING snapshot); an OK drop always leaves the name free. Fail (for example refused
// while a restore reads the snapshot): no effect. Unknown: either.
//
// snapshot-describe: by Collection and Name, linearizable (not WithStale). Found: OK
// with Output.Found true, SnapshotID and State (PENDING, COMMITTED, DELETING, with or
// without the SNAPSHOT_STATE_ prefix). Not found: record it as OK with Found false; a
// Fail whose Error contains "not found" is accepted as the same.
//
// snapshot-list: Input Collection; OK with Output.States: name → state for every
// PENDING and COMMITTED snapshot of the collection (all pages; DELETING ones may be
// included, they count as absent). A list cannot be a porcupine operation of one
// (collection, name) partition, so it is projected: on every name of its collection
// that any create, drop or describe of the history mentions, it is a read of that
// name (absent when not in States) with the list's interval. This is sound (a
// linearizable history stays linearizable projected) but does not check that one list
// is an atomic cut across names.
//
// The registry model, per name: absent, PENDING(id) or COMMITTED(id); a DELETING
// snapshot frees its name at once, so it is absent. Ids of a name only grow (a name
// dropped and created again has a new, larger id): a describe that shows an older id
// is a violation. An acknowledged create is PENDING and COMMITTED within its call.
// The finisher may give up a PENDING snapshot made by a create whose outcome is not
// OK, never one whose create was acknowledged.
//
// segment-allocate: OK with Output.SegmentID. Segments whose allocation was not
// acknowledged are not checked (nobody knows their id).
//
// segment-flush: Input SegmentID and Files (Key as the API takes and returns it — the
// full key — Size, CRC32C). OK: ALLOCATED → FLUSHED with exactly those files. Fail: no
// effect. Unknown: either.
//
// segment-compact: Input Inputs (flushed segments), SegmentID (the one output, allocated
// earlier) and Files (the output's files). OK: inputs FLUSHED → DROPPED, output
// ALLOCATED → FLUSHED with Files. A compaction spans partitions, so it is projected: on
// each input it is "FLUSHED → DROPPED", on the output "ALLOCATED → FLUSHED(files)",
// each with the compaction's interval. Sound, but the all-or-nothing atomicity across
// the segments is not checked here. Fail: no effect. Unknown: either, per segment.
//
// segment-drop: Input SegmentIDs (or SegmentID). OK: each becomes DROPPED.
//
// segment-get: Input SegmentID; OK with Found, State and Files (as the API returns them);
// not found as for describe. FLUSHED must show exactly the flushed files.
//
// The catalog model, per segment: unborn, ALLOCATED, FLUSHED(files), DROPPED, gone.
// The system may also move by itself: an ALLOCATED segment's lease may expire
// (→ DROPPED) and GC may remove a DROPPED segment's record (→ gone: get not found).
// Nothing else: a FLUSHED segment never becomes DROPPED or gone but by a drop or a
// compaction in the history. So the harness must not drop collections or partitions
// whose segments it reads, and must not touch the segments of restore targets through
// these op kinds.
//
// restore-start: OK with Output.JobID. restore-status and restore-cancel: Input JobID;
// OK with Output.State (COMPLETED, FAILED, …). Restore targets must not be written to
// by the workload (their file lists are compared with the snapshot's).
//
// gc-run: not checked.
//
// policy-describe: Input Policy; OK with Output.Policy (id, created_at, interval,
// retention counts, collections, status: runs, last due time, last run's due time).
// policy-snapshots: Input Policy; OK with Output.Snapshots, every snapshot carrying
// the label snapkeep.policy=Policy in every state (id, collection, name, state,
// policy id, due time, created/committed/deleting times, holds with their until and
// active flag), one linearizable page; Truncated when more pages followed (then its
// absences prove nothing). policy-execute: Input Policy; OK with the run's snapshots
// (ID, Collection, Name). hold-add: Input Collection, Name, Reason, UntilMs (0: until
// removed); OK with HoldID and the held snapshot. hold-remove: Input Collection,
// Name, HoldID; OK with the released snapshot. Times are Unix milliseconds of the
// cluster's clock; Input.Start maps the history's clock onto it. The rules are on
// Policy.
//
// # End-state checks
//
// lost-undone: every snapshot id an OK create returned is COMMITTED at the end
// (DescribeSnapshot by id) unless a drop of its name that may have happened after it
// (OK or Unknown, returned after the create was called) exists; every snapshot id known
// (from an OK create or a describe) before an OK drop of its name was called is not
// PENDING or COMMITTED at the end.
//
// bucket-audit: for every database and live collection, every FLUSHED segment's files
// and its READY index builds' files; for every COMMITTED snapshot, its manifest object
// (size and xxhash64 as recorded) and every file the manifest lists: each object must
// exist with the recorded size and CRC-32C (read and computed). Allocated segments are
// excluded (their uploads are in flight).
//
// restores: every job an OK restore-start returned, and every job the cluster lists,
// is COMPLETED, FAILED or CANCELLED at the end; one the history saw COMPLETED is still
// COMPLETED; a COMPLETED job's target collection has only FLUSHED segments whose file
// lists (keys relative to each segment's prefix, sizes, CRC-32C) are, as a multiset,
// those of the snapshot's manifest (restricted to the job's partitions and _default)
// when the snapshot is still COMMITTED, and every target file reads back with its
// recorded size and CRC-32C.
//
// convergence: NodeHashes all equal, NodeErrors empty, and at least one hash.
package checker
