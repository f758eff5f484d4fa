// Package client is the Go client of snapkeep, the Raft-replicated catalog of
// collections whose segment files live in S3-compatible object storage.
//
// A Client dials every endpoint lazily, follows the leader the nodes name in their
// responses, and retries calls that failed because a node or the leader was
// unavailable (see Client for the exact policy). Each RPC has one method, which
// takes an option builder in the style of the Milvus Go SDK and returns the
// snapkeepv1 protobuf messages:
//
//	cl, err := client.New(ctx, "10.0.0.1:7001", "10.0.0.2:7001", "10.0.0.3:7001")
//	if err != nil {
//		return err
//	}
//	defer cl.Close()
//
//	coll, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs").
//		WithPartitions("2024", "2025").
//		WithProperty("collection.ttl.seconds", "86400"))
//	switch {
//	case errors.Is(err, client.ErrAlreadyExists):
//		// someone else created it
//	case err != nil:
//		return err
//	}
//
// Restores, exports to a repository (another bucket, see RegisterRepository) and
// restores from one are jobs of one table with one id space: RestoreSnapshot and
// ExportSnapshot start them; GetRestoreState, WaitRestore, ListRestoreJobs and
// CancelRestore serve every kind.
//
// Writes get a fresh request id per call, kept across retries, so the cluster applies
// each at most once. Errors answered by the cluster are *Error values that keep the
// server's code and message; match them with errors.Is and the Err sentinels
// (ErrNotFound, ErrAlreadyExists, ...). A call cut short by its context matches
// context.DeadlineExceeded or context.Canceled as well.
package client
