package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
)

// Dev cluster ports, relative to --base-port: gRPC on +1..+3, Raft on +11..+13, the
// embedded S3 on +20, HTTP (metrics, health) on +31..+33 (devHTTPOffset, ops.go).
const (
	devNodes      = 3
	devGRPCOffset = 1
	devRaftOffset = 11
	devS3Offset   = 20
)

type devFlags struct {
	dataDir             string
	basePort            int
	demo, once          bool
	logLevel, logFormat string
}

func newDevCmd() *cobra.Command {
	f := &devFlags{}
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a three-node cluster and an embedded S3 in this process, on loopback",
		Long: `Run a complete snapkeep on 127.0.0.1: three real nodes (Raft over TCP, gRPC)
and an embedded S3 server, in one process. For scripts it prints

  endpoints: 127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
  s3: http://127.0.0.1:P bucket=B
  http: 127.0.0.1:H1,127.0.0.1:H2,127.0.0.1:H3
  ready

(the http addresses serve Prometheus /metrics and /health: curl 127.0.0.1:H1/metrics)

once a leader is elected. With --demo it then runs the demo scenario; with --once
it exits after the demo (non-zero if anything failed). Otherwise it serves until
interrupted.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.once && !f.demo {
				return usageErrorf("--once needs --demo")
			}
			if f.basePort < 1 || f.basePort+devHTTPOffset+devNodes-1 > 65535 {
				return usageErrorf("--base-port %d is out of range", f.basePort)
			}
			logger, err := newLogger(f.logLevel, f.logFormat)
			if err != nil {
				return usageErrorf("%v", err)
			}
			return runDev(cmd, f, logger)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", "", "directory for the nodes' data and the embedded S3's objects (default: a new temporary directory, removed at exit)")
	fl.IntVar(&f.basePort, "base-port", 7000, "ports: gRPC on base+1..3, Raft on base+11..13, S3 on base+20, HTTP (metrics, health) on base+31..33")
	fl.BoolVar(&f.demo, "demo", false, "run the demo scenario once the cluster is ready")
	fl.BoolVar(&f.once, "once", false, "exit after the demo: 0 if it succeeded, 1 if not")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "warn", "log level of the nodes: debug, info, warn or error")
	cmd.Flags().StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

func runDev(cmd *cobra.Command, f *devFlags, logger *slog.Logger) (err error) {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	dir := f.dataDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "snapkeep-dev-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}

	s3, err := objstore.StartEmbedded(ctx, objstore.EmbeddedOptions{
		Dir:    filepath.Join(dir, "s3"),
		Addr:   fmt.Sprintf("127.0.0.1:%d", f.basePort+devS3Offset),
		Bucket: objstore.DefaultEmbeddedBucket,
		Logger: logger.With("component", "s3"),
	})
	if err != nil {
		return fmt.Errorf("start the embedded S3: %w", err)
	}
	defer s3.Close()

	peers := map[string]string{}
	for i := 0; i < devNodes; i++ {
		peers[devNodeID(i)] = fmt.Sprintf("127.0.0.1:%d", f.basePort+devRaftOffset+i)
	}
	nodes := make([]*server.Node, 0, devNodes)
	defer func() {
		for _, n := range nodes {
			if cerr := n.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	// The dev cluster's nodes share a fresh random cluster secret, so its Internal
	// service is closed like a production one's.
	secret, err := newClusterSecret()
	if err != nil {
		return err
	}
	endpoints := make([]string, 0, devNodes)
	for i := 0; i < devNodes; i++ {
		n, err := server.Start(server.Config{
			NodeID:   devNodeID(i),
			DataDir:  filepath.Join(dir, devNodeID(i)),
			RaftAddr: peers[devNodeID(i)],
			GRPCAddr: fmt.Sprintf("127.0.0.1:%d", f.basePort+devGRPCOffset+i),
			Peers:    peers,
			Storage:  s3.Config(),
			Root:     "snapkeep",
			Version:  version,
			Logger:   logger,
			HTTP:     devHTTP(f.basePort, i),
			Auth:     server.AuthConfig{InternalToken: secret},
		})
		if err != nil {
			return fmt.Errorf("start node %s: %w", devNodeID(i), err)
		}
		nodes = append(nodes, n)
		endpoints = append(endpoints, n.GRPCAddr())
	}
	fmt.Fprintf(out, "endpoints: %s\n", strings.Join(endpoints, ","))
	fmt.Fprintf(out, "s3: %s bucket=%s\n", s3.Endpoint(), s3.Bucket())
	fmt.Fprintf(out, "http: %s\n", devHTTPAddrs(nodes))
	fmt.Fprintf(out, "data: %s\n", dir)

	cl, err := client.New(ctx, endpoints...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := waitClusterReady(ctx, cl, devNodes); err != nil {
		return err
	}
	fmt.Fprintln(out, "ready")

	if f.demo {
		store, err := objstore.NewS3(ctx, s3.Config())
		if err != nil {
			return err
		}
		defer store.Close()
		if err := runDemo(ctx, cl, store, out); err != nil {
			return err
		}
		if f.once {
			return nil
		}
	}
	fmt.Fprintf(out, "serving; try: snapkeep --endpoints %s cluster status (Ctrl-C stops)\n", strings.Join(endpoints, ","))
	<-ctx.Done()
	return nil
}

func devNodeID(i int) string { return fmt.Sprintf("n%d", i+1) }

// waitClusterReady waits until the cluster has a leader and every node answers and has
// registered its address.
func waitClusterReady(ctx context.Context, cl *client.Client, nodes int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var last string
	for {
		st, err := cl.ClusterStatus(ctx)
		if err == nil {
			ready := 0
			for _, n := range st.Nodes {
				if n.GrpcAddr != "" && (n.Role == snapkeepv1.NodeRole_NODE_ROLE_LEADER || n.Role == snapkeepv1.NodeRole_NODE_ROLE_FOLLOWER) {
					ready++
				}
			}
			if st.LeaderId != "" && ready == nodes {
				return nil
			}
			last = fmt.Sprintf("leader %q, %d of %d nodes ready", st.LeaderId, ready, nodes)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cluster did not become ready: %s", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
