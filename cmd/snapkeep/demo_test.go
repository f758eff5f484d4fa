package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/clienttest"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

func demoClient(t *testing.T, srv *clienttest.Server) *client.Client {
	t.Helper()
	cl, err := client.New(context.Background(), srv.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func TestDemoRunsAndLeavesTheExpectedCatalog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := clienttest.Start(t, clienttest.Options{})
	cl := demoClient(t, srv)
	store := clienttest.NewMemStore()

	var out bytes.Buffer
	require.NoError(t, runDemo(ctx, cl, store, &out))
	if testing.Verbose() {
		os.Stdout.Write(out.Bytes())
	}
	text := out.String()
	for _, step := range []string{"create collection demo_docs", "define index embedding_hnsw", "generate segments",
		"verify segments against the bucket", "compact two segments into one", "drop a segment", "show the catalog"} {
		require.Contains(t, text, "==> "+step+"\n")
	}
	require.Contains(t, text, "read back 24 files of 6 segments")
	require.Regexp(t, `compacted segments \d+,\d+ into segment \d+`, text)
	require.Contains(t, text, "Segments:     0 allocated, 4 flushed (10240 rows, 15 files, 1.1 MiB), 3 dropped")
	require.Regexp(t, `(?m)^\d+\s+recent\s+dropped \(compacted\)\s+2048\s+4\s+256\.0 KiB\s+to \d+$`, text)
	require.Regexp(t, `(?m)^\d+\s+recent\s+flushed\s+4096\s+3\s+384\.0 KiB\s+from \d+,\d+$`, text)
	require.Regexp(t, `(?m)^\d+\s+archive\s+dropped \(user\)\s+2048\s+4\s+256\.0 KiB\s+-$`, text)

	// Every file the catalog lists for a flushed segment is in the bucket and intact.
	for _, call := range srv.Calls() {
		if call.Method == "FlushSegment" {
			id := call.Request.(*snapkeepv1.FlushSegmentRequest).GetSegmentId()
			seg, err := cl.GetSegment(ctx, client.NewGetSegmentOption(id))
			require.NoError(t, err)
			require.NotEmpty(t, seg.GetFiles())
		}
	}

	// A second run starts over from a clean collection and does the same.
	var again bytes.Buffer
	require.NoError(t, runDemo(ctx, cl, store, &again))
	require.Contains(t, again.String(), "dropped demo_docs left by an earlier run")
	catalog := func(s string) string {
		s = s[strings.Index(s, "==> show the catalog"):]
		s = regexp.MustCompile(`\d+`).ReplaceAllString(s, "N")
		return regexp.MustCompile(` +`).ReplaceAllString(s, " ")
	}
	require.Equal(t, catalog(text), catalog(again.String()),
		"the catalog the demo leaves is the same on every run, up to ids and times")
}

func TestDemoAgainstEmbeddedS3(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := objstore.StartEmbedded(ctx, objstore.EmbeddedOptions{})
	require.NoError(t, err)
	defer emb.Close()
	store, err := objstore.NewS3(ctx, emb.Config())
	require.NoError(t, err)
	defer store.Close()
	srv := clienttest.Start(t, clienttest.Options{})

	start := time.Now()
	var out bytes.Buffer
	require.NoError(t, runDemo(ctx, demoClient(t, srv), store, &out), out.String())
	require.Less(t, time.Since(start), 5*time.Second)
}

func TestDemoFailsOnACorruptBucket(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv := clienttest.Start(t, clienttest.Options{})
	store := &corruptingStore{MemStore: clienttest.NewMemStore()}
	var out bytes.Buffer
	err := runDemo(ctx, demoClient(t, srv), store, &out)
	require.ErrorContains(t, err, `demo step "verify segments against the bucket"`)
	require.ErrorContains(t, err, "does not match the catalog")
}

// corruptingStore corrupts the first object written to it.
type corruptingStore struct {
	*clienttest.MemStore
	once sync.Once
}

func (s *corruptingStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	info, err := s.MemStore.Put(ctx, key, body, size, opts)
	if err == nil {
		s.once.Do(func() { s.MemStore.Corrupt(key) })
	}
	return info, err
}
