package main

import (
	"bytes"
	"context"
	"hash/crc32"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/objstore"
)

// demoEnv is a one-node cluster, a client for it and a bucket on the embedded S3
// server.
type demoEnv struct {
	cl    *client.Client
	store *objstore.S3
}

func newDemoEnv(t *testing.T) *demoEnv {
	t.Helper()
	ctx := context.Background()
	emb, err := objstore.StartEmbedded(ctx, objstore.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, emb.Close()) })
	cluster := startNode(t, emb.Config())
	cl, err := client.New(ctx, cluster.Endpoints()...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	store, err := objstore.NewS3(ctx, emb.Config())
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	return &demoEnv{cl: cl, store: store}
}

func TestDemoRunsAndLeavesTheExpectedCatalog(t *testing.T) {
	t.Parallel()
	// Each run waits for three of the policy's snapshots, 2 s apart.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env := newDemoEnv(t)

	start := time.Now()
	var out bytes.Buffer
	require.NoError(t, runDemo(ctx, env.cl, env.store, &out), out.String())
	t.Logf("demo took %v", time.Since(start)) // speed is for benchmarks, not tests
	if testing.Verbose() {
		os.Stdout.Write(out.Bytes())
	}
	text := out.String()
	for _, step := range []string{"create collection demo_docs", "define index embedding_hnsw", "generate segments",
		"verify segments against the bucket", "snapshot the collection as demo_nightly", "compact two segments into one",
		"drop a segment", "show the catalog", "check that the snapshot still describes the original files",
		"restore the snapshot into demo_docs_restored", "more churn after the snapshot", "collect garbage",
		"a Milvus-layout collection next to it: demo_milvus",
		"a policy: demo_docs snapshotted every 1s, the retention keeps 1"} {
		require.Contains(t, text, "==> "+step+"\n")
	}
	require.Contains(t, text, "read back 24 files of 6 segments")
	require.Regexp(t, `compacted segments \d+,\d+ into segment \d+`, text)
	require.Contains(t, text, "Segments:     0 allocated, 4 flushed (10240 rows, 15 files, 1.1 MiB), 3 dropped")
	require.Regexp(t, `(?m)^\d+\s+recent\s+dropped \(compacted\)\s+2048\s+4\s+256\.0 KiB\s+to \d+$`, text)
	require.Regexp(t, `(?m)^\d+\s+recent\s+flushed\s+4096\s+3\s+384\.0 KiB\s+from \d+,\d+$`, text)
	require.Regexp(t, `(?m)^\d+\s+archive\s+dropped \(user\)\s+2048\s+4\s+256\.0 KiB\s+-$`, text)

	require.Regexp(t, `GC run \d+ on n1: deleted 12 objects \(768\.0 KiB\), 3 records removed, 0 errors`, text)
	require.Regexp(t, `(?m)^kept\s+pinned by a snapshot\s+12\s+768\.0 KiB\s+3$`, text)

	// The Milvus-layout collection: files at Milvus's keys, a dated snapshot, a restore
	// with the caller's ids, whose keys carry them.
	require.Regexp(t, `collection demo_milvus \(id \d+, layout milvus\): 3 segments`, text)
	require.Regexp(t, `(?m)^  insert\s+\w+/insert_log/\d+/\d+/\d+/100/1$`, text)
	require.Regexp(t, `(?m)^  delta\s+\w+/delta_log/\d+/\d+/\d+/\d+$`, text)
	require.Regexp(t, `snapshot nightly-\d{4}\.\d\d\.\d\d restored into demo_milvus_restored \(id \d+\) by job \d+`, text)
	require.Regexp(t, `(?m)^  segment \d+ -> \d+$`, text)
	require.Regexp(t, `copied and read back intact: \w+/bm25_stats/\d+/\d+/\d+/104/\d+`, text)

	// The policy: a scheduled snapshot, committed, then an expiry by the retention.
	require.Regexp(t, `created policy demo-every-1s \(id \d+\): every 1s, named demo-\{2006\.01\.02-15\.04\.05\}, `+
		`keep at most 1, keep at least 1 per collection; checked every 1s; next run \d{4}-\S+\n`, text)
	require.Regexp(t, `(?m)^\d+\s+demo_docs\s+demo-\d{4}\.\d\d\.\d\d-\d\d\.\d\d\.\d\d\s+committed\s+\S+\s+5\s+18\s+1\.5 MiB\s+[\d.]+ \S*B\s+[\d.]+ \S*B\s+-\s+-\s+demo-every-1s\s+snapkeep\.policy=demo-every-1s$`, text,
		"a scheduled snapshot of the collection's 5 flushed segments, by the policy")
	require.Regexp(t, `(?m)^demo-every-1s\s+every 1s\s+yes\s+\S+\s+\S+\s+-\s+\d+/0/[1-9]\d*$`, text,
		"the policy's status line: snapshots taken, none failed, some deleted by the retention")
	require.Regexp(t, `(?m)^snapshot demo-\S+ (is deleting: .+|is gone: expired by the retention and deleted)$`, text,
		"the first snapshot expired")
	require.Regexp(t, `\nit keeps demo-\S+(, demo-\S+)*\n`, text, "the newest (another may have come meanwhile)")
	require.Contains(t, text, "disabled policy demo-every-1s: no more snapshots")
	policy, err := env.cl.DescribePolicy(ctx, "demo-every-1s")
	require.NoError(t, err)
	require.False(t, policy.GetEnabled())

	// Every file the catalog lists, for flushed and dropped segments alike, is in the
	// bucket and intact: GC reclaimed the garbage made after the snapshot, records and
	// all, and kept what the snapshot pins.
	segments := 0
	for seg, err := range env.cl.ListAllSegments(ctx, client.NewListSegmentsOption(demoCollection)) {
		require.NoError(t, err)
		require.NotEmpty(t, seg.GetFiles(), "segment %d", seg.GetId())
		require.NoError(t, datagen.Verify(ctx, env.store, seg))
		segments++
	}
	require.Equal(t, 8, segments)

	// A second run starts over from a clean collection and does the same.
	var again bytes.Buffer
	require.NoError(t, runDemo(ctx, env.cl, env.store, &again), again.String())
	require.Contains(t, again.String(), "dropped demo_docs left by an earlier run")
	require.Contains(t, again.String(), "deleted policy demo-every-1s left by an earlier run")
	catalog := func(s string) string {
		s = s[strings.Index(s, "==> show the catalog"):strings.Index(s, "==> check that the snapshot")]
		s = regexp.MustCompile(`\d+`).ReplaceAllString(s, "N")
		return regexp.MustCompile(` +`).ReplaceAllString(s, " ")
	}
	require.Equal(t, catalog(text), catalog(again.String()),
		"the catalog the demo leaves is the same on every run, up to ids and times")
}

func TestDemoFailsOnACorruptBucket(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	env := newDemoEnv(t)
	store := &corruptingStore{Store: env.store}
	var out bytes.Buffer
	err := runDemo(ctx, env.cl, store, &out)
	require.ErrorContains(t, err, `demo step "verify segments against the bucket"`)
	require.ErrorContains(t, err, "does not match the catalog")
	require.ErrorIs(t, err, datagen.ErrMismatch)
}

// corruptingStore flips a byte of the first object written through it. The object is
// stored with the flipped bytes' own checksum, so only the catalog can tell.
type corruptingStore struct {
	objstore.Store
	once sync.Once
}

func (s *corruptingStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	var corrupt []byte
	s.once.Do(func() {
		data, err := io.ReadAll(body)
		if err != nil {
			panic(err) // the demo's bodies are in memory
		}
		data[len(data)/2] ^= 0xff
		corrupt = data
	})
	if corrupt != nil {
		body = bytes.NewReader(corrupt)
		opts.CRC32C = crc32.Checksum(corrupt, crc32.MakeTable(crc32.Castagnoli))
	}
	return s.Store.Put(ctx, key, body, size, opts)
}
