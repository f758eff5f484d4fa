// Command fsyncprobe counts the fsync-family system calls each server makes per
// catalog write (1 client): snapkeep AllocateSegment vs etcd Put, under strace -c.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/snapkeep/snapkeep/bench/internal/env"
	"github.com/snapkeep/snapkeep/client"
)

func main() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "fsyncprobe-")
	defer os.RemoveAll(dir)
	s3, err := env.StartS3(ctx, dir)
	must(err)
	defer s3.Stop()
	sk, err := env.StartSnapkeep(ctx, filepath.Join(dir, "sk"), s3, env.SnapkeepOptions{})
	must(err)
	defer sk.Stop()
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
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
