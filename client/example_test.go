package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// Example creates a collection, registers one segment and lists the flushed ones. It
// needs a running cluster (snapkeep dev), so it is compiled but not run.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cl, err := client.New(ctx, "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003")
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()

	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs").
		WithPartitions("y2025").
		WithProperty("collection.ttl.seconds", "86400").
		WithDescription("support articles"))
	if err != nil && !errors.Is(err, client.ErrAlreadyExists) {
		log.Fatal(err)
	}

	// Reserve a segment, upload its files under seg.Prefix (not shown), then flush it.
	seg, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("docs").
		WithPartition("y2025").
		WithLease(10*time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	_, err = cl.FlushSegment(ctx, client.NewFlushSegmentOption(seg.GetId()).
		WithRowCount(1000).
		WithFiles(&snapkeepv1.File{
			Key:     seg.GetPrefix() + "insert/100/1",
			Kind:    snapkeepv1.FileKind_FILE_KIND_INSERT,
			FieldId: 100,
			Size:    4096,
			Crc32C:  0x1234abcd,
		}))
	if err != nil {
		log.Fatal(err)
	}

	flushed := client.NewListSegmentsOption("docs").
		WithStates(snapkeepv1.SegmentState_SEGMENT_STATE_FLUSHED).
		WithoutFiles()
	for s, err := range cl.ListAllSegments(ctx, flushed) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(s.GetId(), s.GetRowCount())
	}
}
