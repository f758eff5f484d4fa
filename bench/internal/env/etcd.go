package env

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/snapkeep/snapkeep/internal/harness"
)

// EtcdMember is one etcd process.
type EtcdMember struct {
	*harness.Process
	Name       string
	ClientAddr string
	PeerAddr   string
	DataDir    string
}

// Etcd is a three-member etcd cluster with etcd's defaults (fsync on every commit,
// 100 ms heartbeat, 1 s election timeout).
type Etcd struct {
	Members []*EtcdMember
}

// StartEtcd starts three members of <repo>/bin/etcd with data and logs under dir and
// waits until the cluster serves a linearizable read.
func StartEtcd(ctx context.Context, dir string) (*Etcd, error) {
	bin, err := Bin("etcd")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil { // the logs go here
		return nil, err
	}
	c := &Etcd{}
	var initial []string
	for i := 1; i <= 3; i++ {
		m := &EtcdMember{Name: fmt.Sprintf("e%d", i), DataDir: filepath.Join(dir, fmt.Sprintf("etcd-e%d", i))}
		if m.ClientAddr, err = harness.FreeAddr(); err != nil {
			return nil, err
		}
		if m.PeerAddr, err = harness.FreeAddr(); err != nil {
			return nil, err
		}
		initial = append(initial, m.Name+"=http://"+m.PeerAddr)
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		args := []string{"--name", m.Name, "--data-dir", m.DataDir,
			"--listen-client-urls", "http://" + m.ClientAddr, "--advertise-client-urls", "http://" + m.ClientAddr,
			"--listen-peer-urls", "http://" + m.PeerAddr, "--initial-advertise-peer-urls", "http://" + m.PeerAddr,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "snapkeep-bench", "--log-level", "warn"}
		m.Process = &harness.Process{Name: "etcd-" + m.Name, Binary: bin, Args: args, LogPath: filepath.Join(dir, "etcd-"+m.Name+".log")}
		if err := m.Start(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	cl, err := c.Client()
	if err != nil {
		c.Stop()
		return nil, err
	}
	defer cl.Close()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := harness.Poll(wctx, 100*time.Millisecond, 2*time.Second, func(ctx context.Context) error {
		_, err := cl.Get(ctx, "health")
		return err
	}); err != nil {
		c.Stop()
		return nil, fmt.Errorf("etcd not ready (logs in %s): %w", dir, err)
	}
	return c, nil
}

// Endpoints are the members' client URLs.
func (c *Etcd) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, "http://"+m.ClientAddr)
	}
	return eps
}

// Client is an etcd v3 client of every member (one gRPC connection, balanced).
func (c *Etcd) Client() (*clientv3.Client, error) {
	// No client log: its retry warnings would flood the run's output whenever a
	// member is down (failover), and the calls' errors reach the caller anyway.
	return clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

// Stop stops every member.
func (c *Etcd) Stop() {
	for _, m := range c.Members {
		if m.Process != nil {
			_ = m.Stop()
		}
	}
}
