// Command fsyncprobe explains scenario 1's catalog-write figures: it counts the
// fsync-family system calls each server makes per write (1 client, under strace -c:
// snapkeep AllocateSegment vs etcd Put), then runs 64 clients against each side and
// records the leader's CPU profile with perf (with -perf). Output in /tmp/bl/.
// Needs strace (and perf).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/snapkeep/snapkeep/bench/internal/baseline"
	"github.com/snapkeep/snapkeep/bench/internal/env"
	"github.com/snapkeep/snapkeep/client"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

var (
	withPerf  = flag.Bool("perf", false, "also profile each leader under 64 clients with perf record")
	goProfile = flag.Bool("pprof", false, "instead: Go CPU profiles of the three snapkeep nodes under 64 clients (no strace, no etcd)")
	idle      = flag.Bool("idle", false, "with -pprof: profile the nodes idle (no client) for 10 s instead")
	snapshots = flag.Bool("snapshots", false, "instead: profile the snapkeep leader under 64 clients creating small snapshots (10 segments × 8 files)")
	logStore  = flag.String("raft-log-store", "", "the snapkeep nodes' --raft-log-store: wal or bolt (default: the server's, the WAL)")
)

func main() {
	flag.Parse()
	ctx := context.Background()
	must(os.MkdirAll("/tmp/bl", 0o755))
	dir, _ := os.MkdirTemp("", "fsyncprobe-")
	defer os.RemoveAll(dir)
	s3, err := env.StartS3(ctx, dir)
	must(err)
	defer s3.Stop()
	diskP50(dir)
	sk, err := env.StartSnapkeep(ctx, filepath.Join(dir, "sk"), s3, env.SnapkeepOptions{Extra: []string{"--snapshots-per-collection", "100000"},
		RaftLogStore: *logStore, HTTP: *goProfile})
	must(err)
	defer sk.Stop()
	if *goProfile && *idle {
		profileIdleNodes(sk)
		return
	}
	if *goProfile {
		profileNodes(ctx, sk)
		return
	}
	et, err := env.StartEtcd(ctx, filepath.Join(dir, "etcd"))
	must(err)
	defer et.Stop()
	cl, err := sk.Client(ctx)
	must(err)
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("w"))
	must(err)
	ec, err := et.Client()
	must(err)
	leader, err := sk.Leader(ctx)
	must(err)
	if *snapshots {
		profileSnapshots(ctx, cl, leader.Pid())
		return
	}

	run := func(name string, pids []int, op func() error) {
		var tracers []*exec.Cmd
		for _, pid := range pids {
			out := filepath.Join("/tmp/bl", fmt.Sprintf("strace-%s-%d.txt", name, pid))
			c := exec.Command("strace", "-f", "-c", "-e", "trace=fsync,fdatasync,sync_file_range,pwrite64,write,writev", "-o", out, "-p", strconv.Itoa(pid))
			must(c.Start())
			tracers = append(tracers, c)
		}
		time.Sleep(time.Second)
		n := 0
		start := time.Now()
		for time.Since(start) < 4*time.Second {
			must(op())
			n++
		}
		el := time.Since(start)
		for _, c := range tracers {
			_ = c.Process.Signal(syscall.SIGINT)
			_ = c.Wait()
		}
		fmt.Printf("%s: %d writes in %v under strace (%.2f ms each)\n", name, n, el, float64(el.Milliseconds())/float64(n))
	}
	var skPids []int
	for _, n := range sk.Nodes {
		skPids = append(skPids, n.Pid())
		fmt.Println("snapkeep", n.ID, "pid", n.Pid(), "leader", n.ID == leader.ID)
	}
	run("snapkeep", skPids, func() error {
		_, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("w"))
		return err
	})
	var etPids []int
	for _, m := range et.Members {
		etPids = append(etPids, m.Pid())
		st, err := ec.Status(ctx, "http://"+m.ClientAddr)
		must(err)
		fmt.Println("etcd", m.Name, "pid", m.Pid(), "leader", st.Leader == st.Header.MemberId)
	}
	i := 0
	run("etcd", etPids, func() error {
		i++
		_, err := ec.Put(ctx, fmt.Sprintf("k/%d", i), string(make([]byte, 300)))
		return err
	})

	if !*withPerf {
		return
	}
	etLeader := 0
	for _, m := range et.Members {
		st, err := ec.Status(ctx, "http://"+m.ClientAddr)
		must(err)
		if st.Leader == st.Header.MemberId {
			etLeader = m.Pid()
		}
	}
	var seq int64
	var mu sync.Mutex
	profile := func(name string, pid int, op func() error) {
		out := fmt.Sprintf("/tmp/bl/perf-%s.data", name)
		p := exec.Command("perf", "record", "-F", "499", "-g", "-p", strconv.Itoa(pid), "-o", out, "--", "sleep", "4")
		must(p.Start())
		var wg sync.WaitGroup
		n := 0
		start := time.Now()
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < 5*time.Second {
					must(op())
					mu.Lock()
					n++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		_ = p.Wait()
		fmt.Printf("%s, 64 clients: %d writes in 5 s; profile %s (perf report -i %s --no-children --stdio)\n", name, n, out, out)
	}
	profile("snapkeep", leader.Pid(), func() error {
		_, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("w"))
		return err
	})
	profile("etcd", etLeader, func() error {
		mu.Lock()
		seq++
		k := fmt.Sprintf("p/%d", seq)
		mu.Unlock()
		_, err := ec.Put(ctx, k, string(make([]byte, 300)))
		return err
	})
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// profileSnapshots fills a collection with ten segments and records the leader's
// profile while 64 clients snapshot it back to back.
func profileSnapshots(ctx context.Context, cl *client.Client, pid int) {
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("snaps"))
	must(err)
	for range 10 {
		s, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("snaps"))
		must(err)
		seg := baseline.MilvusSegment(s.CollectionId, s.PartitionId, s.Id)
		var files []*pb.File
		for _, f := range seg.Files {
			kind := map[baseline.FileKind]pb.FileKind{baseline.KindInsert: pb.FileKind_FILE_KIND_INSERT, baseline.KindDelta: pb.FileKind_FILE_KIND_DELTA, baseline.KindStats: pb.FileKind_FILE_KIND_STATS}[f.Kind]
			files = append(files, &pb.File{Key: s.Prefix + f.SnapkeepRelKey(), Kind: kind, FieldId: f.FieldID, Size: f.Size, Crc32C: f.CRC32C})
		}
		_, err = cl.FlushSegment(ctx, client.NewFlushSegmentOption(s.Id).WithRowCount(seg.Rows).WithFiles(files...))
		must(err)
	}
	out := "/tmp/bl/perf-snapshots.data"
	p := exec.Command("perf", "record", "-F", "499", "-g", "-p", strconv.Itoa(pid), "-o", out, "--", "sleep", "5")
	must(p.Start())
	var seq atomic.Int64
	clients64(6*time.Second, func() {
		_, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("snaps", fmt.Sprintf("s%d", seq.Add(1))))
		must(err)
	})()
	_ = p.Wait()
	fmt.Printf("snapshots, 64 clients: %d in 6 s; profile %s\n", seq.Load(), out)
}

// profileNodes records a Go CPU profile of every node for 5 s while 64 clients
// allocate segments back to back, and counts the writes and each process's CPU.
func profileNodes(ctx context.Context, sk *env.Snapkeep) {
	cl, err := sk.Client(ctx)
	must(err)
	defer cl.Close()
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("w"))
	must(err)
	leader, err := sk.Leader(ctx)
	must(err)
	var n atomic.Int64
	wait := clients64(7*time.Second, func() {
		_, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("w"))
		must(err)
		n.Add(1)
	})
	time.Sleep(time.Second)
	n0 := n.Load()
	cpu := profileEach(sk, 5, func(node *env.SnapkeepNode) string {
		if node.ID == leader.ID {
			return fmt.Sprintf("/tmp/bl/pprof-%s-leader.pb.gz", node.ID)
		}
		return fmt.Sprintf("/tmp/bl/pprof-%s-follower.pb.gz", node.ID)
	})
	writes := n.Load() - n0
	for i, node := range sk.Nodes {
		fmt.Printf("%s: %.1f µs CPU per write\n", node.ID, float64(cpu[i].Microseconds())/float64(writes))
	}
	wait()
	fmt.Printf("64 clients: %d writes in the profiled 5 s\n", writes)
}

// clients64 runs op back to back on 64 goroutines for d; wait waits for them.
func clients64(d time.Duration, op func()) (wait func()) {
	var wg sync.WaitGroup
	start := time.Now()
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < d {
				op()
			}
		}()
	}
	return wg.Wait
}

// profileIdleNodes records a Go CPU profile of every node for 10 s with no client:
// the cost of the background duties, heartbeats and gossip.
func profileIdleNodes(sk *env.Snapkeep) {
	time.Sleep(2 * time.Second)
	start := time.Now()
	cpu := profileEach(sk, 10, func(node *env.SnapkeepNode) string { return fmt.Sprintf("/tmp/bl/pprof-idle-%s.pb.gz", node.ID) })
	el := time.Since(start)
	for i, node := range sk.Nodes {
		fmt.Printf("%s idle: %.1f ms CPU per second\n", node.ID, float64(cpu[i].Microseconds())/1000/el.Seconds())
	}
}

// profileEach saves a Go CPU profile of seconds from every node (at path(node)), all
// at once, and returns the CPU each node's process spent meanwhile.
func profileEach(sk *env.Snapkeep, seconds int, path func(*env.SnapkeepNode) string) []time.Duration {
	var cpu0 []time.Duration
	for _, node := range sk.Nodes {
		c, err := env.ProcessCPU(node.Pid())
		must(err)
		cpu0 = append(cpu0, c)
	}
	var pw sync.WaitGroup
	for _, node := range sk.Nodes {
		pw.Add(1)
		go func() {
			defer pw.Done()
			resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", node.HTTPAddr, seconds))
			must(err)
			defer resp.Body.Close()
			out := path(node)
			f, err := os.Create(out)
			must(err)
			_, err = io.Copy(f, resp.Body)
			must(err)
			must(f.Close())
			fmt.Println("profile", out)
		}()
	}
	pw.Wait()
	spent := make([]time.Duration, len(sk.Nodes))
	for i, node := range sk.Nodes {
		c, err := env.ProcessCPU(node.Pid())
		must(err)
		spent[i] = c - cpu0[i]
	}
	return spent
}

// diskP50 prints the disk's write+fdatasync latency in dir (4 KiB blocks overwritten
// in a preallocated file, as scenario 7's probe): the floor of one sync.
func diskP50(dir string) {
	f, err := os.CreateTemp(dir, "disk-*.dat")
	must(err)
	defer os.Remove(f.Name())
	defer f.Close()
	const n = 200
	block := make([]byte, 4096)
	for range n {
		_, err := f.Write(block)
		must(err)
	}
	must(f.Sync())
	lat := make([]time.Duration, n)
	for i := range n {
		block[0] = byte(i)
		start := time.Now()
		_, err := f.WriteAt(block, int64(i)*4096)
		must(err)
		must(syscall.Fdatasync(int(f.Fd())))
		lat[i] = time.Since(start)
	}
	slices.Sort(lat)
	fmt.Printf("disk: write+fdatasync 4 KiB p50 %.3f ms (of %d)\n", float64(lat[n/2].Microseconds())/1000, n)
}
