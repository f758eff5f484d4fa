package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/repostore"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// serverFlags are the flags of `snapkeep server`.
type serverFlags struct {
	nodeID, dataDir                string
	raftAddr, raftAdvertise        string
	grpcAddr, grpcAdvertise, peers string
	dialVia                        string
	s3                             objstore.S3Config
	root                           string
	snapshotsPerCollection         int
	snapshotTimeout                time.Duration
	restoreConcurrency             int
	restoreLease, restoreRetention time.Duration
	restoreAttempts                int
	restoreBatch                   int
	gcDisabled                     bool
	scrubDisabled                  bool
	scrubEvery, scrubDeepEvery     time.Duration
	scrubPerPass                   int
	scrubRate                      int64
	gcInterval, gcOrphanInterval   time.Duration
	gcGrace, gcOrphanGrace         time.Duration
	gcDeleteRate                   float64
	logLevel, logFormat            string
	security                       server.Config // TLS and Auth only (addSecurityFlags)
	cfg                            server.Config // fields bound to flags directly (addHTTPFlags)
	backup                         server.BackupConfig
	repositoryCredentials          string
	memoryLimit                    string
}

func newServerCmd() *cobra.Command {
	f := &serverFlags{}
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run one node of a cluster",
		Long: `Run one node of a snapkeep cluster until interrupted (SIGINT or SIGTERM stop it
gracefully). The first start of each node bootstraps the cluster from --peers;
later starts rejoin it from the node's data dir.

Example, three nodes on one machine:

  snapkeep server --node-id n1 --data-dir /var/lib/snapkeep/n1 \
    --raft-addr 127.0.0.1:7011 --grpc-addr 127.0.0.1:7001 \
    --peers n1=127.0.0.1:7011,n2=127.0.0.1:7012,n3=127.0.0.1:7013 \
    --s3-endpoint http://127.0.0.1:9000 --s3-bucket snapkeep --s3-path-style

With gossip instead of --peers, each node joins the others and the three bootstrap
together once they see each other (see docs/OPERATIONS.md):

  snapkeep server --node-id n1 --data-dir /var/lib/snapkeep/n1 \
    --raft-addr 10.0.0.1:7011 --grpc-addr 10.0.0.1:7001 --gossip-addr 10.0.0.1:7021 \
    --join 10.0.0.2:7021 --join 10.0.0.3:7021 --bootstrap-expect 3`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var peers map[string]string
			var err error
			if f.peers != "" || f.cfg.Gossip.Addr == "" {
				if peers, err = server.ParsePeers(f.peers); err != nil {
					return usageErrorf("--peers: %v", err)
				}
			}
			dialVia, err := server.ParseDialVia(f.dialVia)
			if err != nil {
				return usageErrorf("--dial-via: %v", err)
			}
			logger, err := newLogger(f.logLevel, f.logFormat)
			if err != nil {
				return usageErrorf("%v", err)
			}
			if err := applyMemoryLimit(f.memoryLimit, logger); err != nil {
				return usageErrorf("--memory-limit: %v", err)
			}
			fillS3Credentials(&f.s3)
			repoCreds, err := readRepositoryCredentials(f.repositoryCredentials)
			if err != nil {
				return usageErrorf("--repository-credentials: %v", err)
			}
			node, err := server.Start(server.Config{
				NodeID:        f.nodeID,
				DataDir:       f.dataDir,
				RaftAddr:      f.raftAddr,
				RaftAdvertise: f.raftAdvertise,
				GRPCAddr:      f.grpcAddr,
				GRPCAdvertise: f.grpcAdvertise,
				Peers:         peers,
				DialVia:       dialVia,
				Gossip:        f.cfg.Gossip,
				Storage:       f.s3,
				Root:          f.root,

				RepositoryCredentials: repoCreds,
				Version:               version,

				SnapshotsPerCollection: f.snapshotsPerCollection,
				SnapshotPendingTimeout: f.snapshotTimeout,
				RestoreConcurrency:     f.restoreConcurrency,
				RestoreLease:           f.restoreLease,
				RestoreBatch:           f.restoreBatch,
				RestoreMaxAttempts:     f.restoreAttempts,
				RestoreRetention:       f.restoreRetention,
				MultipartThreshold:     f.cfg.MultipartThreshold,
				MultipartPartSize:      f.cfg.MultipartPartSize,
				GCDisabled:             f.gcDisabled,
				ScrubDisabled:          f.scrubDisabled,
				ScrubEvery:             f.scrubEvery,
				ScrubDeepEvery:         f.scrubDeepEvery,
				ScrubPerPass:           f.scrubPerPass,
				ScrubRate:              f.scrubRate,
				GCInterval:             f.gcInterval,
				GCOrphanInterval:       f.gcOrphanInterval,
				GCGrace:                f.gcGrace,
				GCOrphanGrace:          f.gcOrphanGrace,
				GCDeleteRate:           f.gcDeleteRate,
				Backup:                 f.backup,
				Logger:                 logger,
				TLS:                    f.security.TLS,
				Auth:                   f.security.Auth,
				HTTP:                   f.cfg.HTTP,
				HealthMaxLag:           f.cfg.HealthMaxLag,
				HeartbeatTimeout:       f.cfg.HeartbeatTimeout,
				ElectionTimeout:        f.cfg.ElectionTimeout,
				LeaderLeaseTimeout:     f.cfg.LeaderLeaseTimeout,
				SnapshotInterval:       f.cfg.SnapshotInterval,
				SnapshotThreshold:      f.cfg.SnapshotThreshold,
				TrailingLogs:           f.cfg.TrailingLogs,
				RaftLogStore:           f.cfg.RaftLogStore,
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %s serving on %s (raft %s)\n", node.ID(), node.GRPCAddr(), node.RaftAddr())
			printHTTPAddr(cmd.OutOrStdout(), node)
			<-cmd.Context().Done()
			logger.Info("shutting down")
			return node.Close()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.nodeID, "node-id", "", "this node's id in the cluster (required; never change it)")
	fl.StringVar(&f.dataDir, "data-dir", "", "directory for the Raft log and raft snapshots (required)")
	fl.StringVar(&f.raftAddr, "raft-addr", "127.0.0.1:7011", "address the Raft transport listens on")
	fl.StringVar(&f.raftAdvertise, "raft-advertise", "", "Raft address peers dial, when not --raft-addr")
	fl.StringVar(&f.grpcAddr, "grpc-addr", "127.0.0.1:7001", "address the gRPC API listens on")
	fl.StringVar(&f.grpcAdvertise, "grpc-advertise", "", "gRPC address other nodes and clients are told, when not --grpc-addr")
	fl.StringVar(&f.peers, "peers", "", "the initial cluster: ID=RAFTADDR,... including this node (required without --gossip-addr)")
	fl.StringVar(&f.dialVia, "dial-via", "", "FROM=TO,...: connect to TO whenever this node dials the peer Raft or gRPC address FROM; for fault-injection harnesses and address translation (NAT)")
	addS3Flags(cmd, &f.s3)
	fl.StringVar(&f.repositoryCredentials, "repository-credentials", "", "YAML file of named repository credentials (name: {access_key, secret_key, session_token}); a name not in it is read from SNAPKEEP_REPO_<NAME>_ACCESS_KEY and _SECRET_KEY")
	fl.StringVar(&f.root, "root", "snapkeep", "key prefix every object snapkeep writes or registers sits under")
	fl.IntVar(&f.snapshotsPerCollection, "snapshots-per-collection", 1024, "the most snapshots one collection may have")
	fl.DurationVar(&f.snapshotTimeout, "snapshot-timeout", 10*time.Minute, "how long the leader may take to finish a snapshot before giving it up")
	fl.IntVar(&f.restoreConcurrency, "restore-concurrency", 16, "copies this node runs at once for restores")
	fl.DurationVar(&f.restoreLease, "restore-lease", 5*time.Minute, "how long a node holds a batch of restore tasks before they return to the pool")
	fl.IntVar(&f.restoreBatch, "restore-batch", 1024, "the most restore or export tasks (files) one lease grants a node; smaller batches spread a small job over more leases")
	fl.IntVar(&f.restoreAttempts, "restore-attempts", 10, "failed attempts a restore task may take before its job fails")
	fl.DurationVar(&f.restoreRetention, "restore-retention", 7*24*time.Hour, "how long finished restore jobs are kept")
	fl.Int64Var(&f.cfg.MultipartThreshold, "restore-multipart-threshold", 5<<30, "bytes: restores copy a file this large or larger with a multipart copy (UploadPartCopy) instead of one CopyObject; 5 MiB to 5 GiB (CopyObject's limit)")
	fl.Int64Var(&f.cfg.MultipartPartSize, "restore-part-size", 256<<20, "bytes: the part size of a restore's multipart copy; 5 MiB to 5 GiB (grown for a file that would need more than 10,000 parts)")
	fl.BoolVar(&f.gcDisabled, "gc-disabled", false, "no periodic garbage collection (gc run still works)")
	fl.BoolVar(&f.scrubDisabled, "scrub-disabled", false, "no continuous verification of committed snapshots (fsck still works)")
	fl.DurationVar(&f.scrubEvery, "scrub-every", 24*time.Hour, "verify each committed snapshot's manifest and data file sizes this often (repairing a damaged manifest)")
	fl.DurationVar(&f.scrubDeepEvery, "scrub-deep-every", 0, "also read each snapshot's data back and check its CRC-32C this often (0: never on a schedule)")
	fl.IntVar(&f.scrubPerPass, "scrub-per-pass", 4, "snapshots verified per pass of the scrubber (a pass every 10s)")
	fl.Int64Var(&f.scrubRate, "scrub-rate", 0, "deep verification reads at most this many bytes per second (0: no limit)")
	fl.DurationVar(&f.gcInterval, "gc-interval", time.Minute, "how often the leader collects garbage")
	fl.DurationVar(&f.gcOrphanInterval, "gc-orphan-interval", time.Hour, "how often a collection also lists the root for orphans")
	fl.DurationVar(&f.gcGrace, "gc-grace", time.Hour, "how long dropped segments and index builds are kept")
	fl.DurationVar(&f.gcOrphanGrace, "gc-orphan-grace", 24*time.Hour, "how old an object no record owns must be to be deleted")
	fl.Float64Var(&f.gcDeleteRate, "gc-delete-rate", 5000, "the most objects GC deletes per second")
	fl.StringVar(&f.memoryLimit, "memory-limit", "auto", "the Go runtime's soft memory limit: a size (900MiB), none, or auto: GOMEMLIMIT when set, else 90% of the container's (cgroup's) memory limit, else none (docs/OPERATIONS.md, \"Memory\")")
	addLogFlags(cmd, &f.logLevel, &f.logFormat)
	addSecurityFlags(cmd, &f.security)
	addHTTPFlags(cmd, &f.cfg)
	addRaftTimeoutFlags(cmd, &f.cfg)
	addRaftSnapshotFlags(cmd, &f.cfg)
	addBackupFlags(cmd, &f.backup)
	addGossipFlags(cmd, &f.cfg)
	addConfigFlags(cmd)
	return cmd
}

// addRaftTimeoutFlags adds the Raft timeouts; the defaults are for a LAN (see
// docs/OPERATIONS.md, "Failover and Raft timeouts", for a WAN profile).
func addRaftTimeoutFlags(cmd *cobra.Command, cfg *server.Config) {
	fl := cmd.Flags()
	fl.DurationVar(&cfg.HeartbeatTimeout, "raft-heartbeat-timeout", server.DefaultHeartbeatTimeout, "a follower that has not heard from the leader this long starts an election (checked every 1-2× this; the leader heartbeats every 1/10-1/5 of it), so a failover takes about twice this; raise it, with the two other timeouts, on a WAN or overloaded nodes")
	fl.DurationVar(&cfg.ElectionTimeout, "raft-election-timeout", server.DefaultElectionTimeout, "a candidate without a quorum retries after 1-2× this; at least --raft-heartbeat-timeout")
	fl.DurationVar(&cfg.LeaderLeaseTimeout, "raft-leader-lease-timeout", server.DefaultLeaderLeaseTimeout, "a leader that has not reached a quorum this long steps down; at most --raft-heartbeat-timeout")
}

// addRaftSnapshotFlags adds raft's log compaction settings (the defaults are
// hashicorp/raft's) and the log store.
func addRaftSnapshotFlags(cmd *cobra.Command, cfg *server.Config) {
	def := raft.DefaultConfig()
	fl := cmd.Flags()
	fl.DurationVar(&cfg.SnapshotInterval, "raft-snapshot-interval", def.SnapshotInterval, "how often a node checks whether to take a raft snapshot (a random delay up to as long again is added)")
	fl.Uint64Var(&cfg.SnapshotThreshold, "raft-snapshot-threshold", def.SnapshotThreshold, "log entries since the last raft snapshot that make a node take a new one at its next check")
	fl.Uint64Var(&cfg.TrailingLogs, "raft-trailing-logs", def.TrailingLogs, "log entries kept after a raft snapshot, so a slightly lagging follower catches up from the log")
	fl.StringVar(&cfg.RaftLogStore, "raft-log-store", "wal", "where the Raft log is kept: wal (hashicorp/raft-wal, one fsync per batch) or bolt (raft-boltdb, raft.db); a data dir with a bolt log is migrated to the WAL at start unless bolt is given (docs/OPERATIONS.md)")
}

func addS3Flags(cmd *cobra.Command, cfg *objstore.S3Config) {
	fl := cmd.Flags()
	fl.StringVar(&cfg.Endpoint, "s3-endpoint", "", "S3 endpoint URL (empty: AWS)")
	fl.StringVar(&cfg.Region, "s3-region", "us-east-1", "S3 region")
	fl.StringVar(&cfg.Bucket, "s3-bucket", "snapkeep", "bucket holding the collections' files")
	fl.BoolVar(&cfg.PathStyle, "s3-path-style", false, "use path-style addressing (most self-hosted S3 servers need it)")
	fl.StringVar(&cfg.AccessKey, "s3-access-key", "", "S3 access key (default: env AWS_ACCESS_KEY_ID, then the AWS default chain)")
	fl.StringVar(&cfg.SecretKey, "s3-secret-key", "", "S3 secret key (default: env AWS_SECRET_ACCESS_KEY)")
}

// fillS3Credentials takes credentials from the environment when no flag gave them;
// with neither, the AWS default chain applies.
func fillS3Credentials(cfg *objstore.S3Config) {
	if cfg.AccessKey == "" && cfg.SecretKey == "" {
		cfg.AccessKey = os.Getenv("AWS_ACCESS_KEY_ID")
		cfg.SecretKey = os.Getenv("AWS_SECRET_ACCESS_KEY")
		cfg.SessionToken = os.Getenv("AWS_SESSION_TOKEN")
	}
}

func addLogFlags(cmd *cobra.Command, level, format *string) {
	cmd.Flags().StringVar(level, "log-level", "info", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(format, "log-format", "text", "log format: text or json")
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// readRepositoryCredentials reads the named repository credentials of a YAML file
// ("" reads none). Read once at start: a changed file takes effect at the next start.
func readRepositoryCredentials(path string) (map[string]repostore.Credentials, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var creds map[string]repostore.Credentials
	if err := yaml.Unmarshal(b, &creds); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for name, c := range creds {
		if c.AccessKey == "" || c.SecretKey == "" {
			return nil, fmt.Errorf("%s: credentials %q need access_key and secret_key", path, name)
		}
	}
	return creds, nil
}
