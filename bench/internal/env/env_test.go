package env

import (
	"context"
	"testing"
	"time"

	"github.com/snapkeep/snapkeep/client"
)

// TestClustersStartAndServe starts the S3 server, a snapkeep cluster and an etcd
// cluster, writes to both, kills the snapkeep leader and sees a new one.
func TestClustersStartAndServe(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts versitygw, three snapkeep nodes and three etcd members; run it with `cd bench && go test ./internal/env` (needs bin/etcd from make bench); make bench runs the same code")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := BuildSnapkeep(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s3, err := StartS3(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Stop()
	sk, err := StartSnapkeep(ctx, dir, s3, SnapkeepOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sk.Stop()
	cl, err := sk.Client(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("c")); err != nil {
		t.Fatal(err)
	}
	leader, err := sk.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rss, err := leader.RSS()
	if err != nil || rss <= 0 {
		t.Fatalf("rss %d %v", rss, err)
	}
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	next, err := sk.Leader(ctx)
	for err != nil || next.ID == leader.ID {
		time.Sleep(100 * time.Millisecond)
		next, err = sk.Leader(ctx)
	}

	etcd, err := StartEtcd(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Stop()
	ec, err := etcd.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	if _, err := ec.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
}
