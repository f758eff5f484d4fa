// Package repostore is how a node reaches the repositories registered in the catalog:
// it resolves a repository's credentials by name from the node's own configuration
// (never from the replicated state), keeps one S3 client per repository, one
// throughput limiter per repository, gives each job the stores it reads and writes,
// and probes a repository from this node.
package repostore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/restore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// Credentials are the keys of one named set.
type Credentials struct {
	AccessKey    string `yaml:"access_key" json:"access_key"`
	SecretKey    string `yaml:"secret_key" json:"secret_key"`
	SessionToken string `yaml:"session_token,omitempty" json:"session_token,omitempty"`
}

// Config is what a node knows of its storage and its repository credentials.
type Config struct {
	// Cluster is the cluster's bucket (its settings: the endpoint, region and
	// credentials also serve repositories with no credentials of their own); Store is
	// the client the node uses for it.
	Cluster objstore.S3Config
	Store   objstore.Store
	Root    layout.Root
	// Credentials are named sets of keys (--repository-credentials FILE). A name not
	// there is looked up in the environment: SNAPKEEP_REPO_<NAME>_ACCESS_KEY,
	// _SECRET_KEY and optionally _SESSION_TOKEN (NAME upper-cased, '-' as '_').
	Credentials map[string]Credentials
	// Getenv reads the environment (nil: os.Getenv).
	Getenv func(string) string
	// Wrap, when set, wraps every repository store (tests count requests with it).
	Wrap   func(repository string, s objstore.Store) objstore.Store
	Logger *slog.Logger
}

// Stores holds a node's repository clients. Safe for concurrent use.
type Stores struct {
	cfg Config

	mu       sync.Mutex
	clients  map[string]*client // by repository name
	limiters map[string]*limiter
}

type client struct {
	settings string // what the client was built from
	s3       *objstore.S3
	store    objstore.Store // s3, wrapped
}

type limiter struct {
	rate uint64
	l    restore.Limiter
}

// New returns a node's repository stores.
func New(cfg Config) *Stores {
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Stores{cfg: cfg, clients: map[string]*client{}, limiters: map[string]*limiter{}}
}

// Close releases the clients' idle connections.
func (s *Stores) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.clients {
		_ = c.s3.Close()
	}
}

// ErrNoCredentials means a repository names credentials this node does not have.
var ErrNoCredentials = errors.New("no such credentials on this node")

// credentials resolves a name: the node's file first, then its environment.
func (s *Stores) credentials(name string) (Credentials, error) {
	if name == "" {
		return Credentials{AccessKey: s.cfg.Cluster.AccessKey, SecretKey: s.cfg.Cluster.SecretKey, SessionToken: s.cfg.Cluster.SessionToken}, nil
	}
	if c, ok := s.cfg.Credentials[name]; ok {
		return c, nil
	}
	env := "SNAPKEEP_REPO_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_"
	c := Credentials{AccessKey: s.cfg.Getenv(env + "ACCESS_KEY"), SecretKey: s.cfg.Getenv(env + "SECRET_KEY"), SessionToken: s.cfg.Getenv(env + "SESSION_TOKEN")}
	if c.AccessKey == "" || c.SecretKey == "" {
		return Credentials{}, fmt.Errorf("credentials %q: %w (give them in --repository-credentials or in %sACCESS_KEY and %sSECRET_KEY)", name, ErrNoCredentials, env, env)
	}
	return c, nil
}

// s3Config is the client configuration of a repository.
func (s *Stores) s3Config(r *fsmpb.Repository) (objstore.S3Config, error) {
	creds, err := s.credentials(r.Credentials)
	if err != nil {
		return objstore.S3Config{}, err
	}
	return objstore.S3Config{Endpoint: r.Endpoint, Region: r.Region, Bucket: r.Bucket, PathStyle: r.PathStyle,
		AccessKey: creds.AccessKey, SecretKey: creds.SecretKey, SessionToken: creds.SessionToken}, nil
}

// S3Config is how this node reaches the repository's bucket: its location with the
// credentials this node resolves for it (ErrNoCredentials when it has none).
func (s *Stores) S3Config(r *fsmpb.Repository) (objstore.S3Config, error) { return s.s3Config(r) }

// Store is the repository's bucket as this node reaches it (a client kept per
// repository, rebuilt when its settings change).
func (s *Stores) Store(r *fsmpb.Repository) (objstore.Store, error) {
	c, err := s.client(r)
	if err != nil {
		return nil, err
	}
	return c.store, nil
}

func (s *Stores) client(r *fsmpb.Repository) (*client, error) {
	cfg, err := s.s3Config(r)
	if err != nil {
		return nil, err
	}
	settings := fmt.Sprintf("%q %q %q %v %q %q %q", cfg.Endpoint, cfg.Region, cfg.Bucket, cfg.PathStyle, cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.clients[r.Name]; c != nil && c.settings == settings {
		return c, nil
	}
	s3, err := objstore.NewS3(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", r.Name, err)
	}
	c := &client{settings: settings, s3: s3, store: s3}
	if s.cfg.Wrap != nil {
		c.store = s.cfg.Wrap(r.Name, s3)
	}
	if old := s.clients[r.Name]; old != nil {
		_ = old.s3.Close()
	}
	s.clients[r.Name] = c
	return c, nil
}

// limit is the repository's limiter (nil without a limit), one per repository so
// every job of it shares the rate.
func (s *Stores) limit(r *fsmpb.Repository) restore.Limiter {
	if r.BytesPerSecond == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.limiters[r.Name]; l != nil && l.rate == r.BytesPerSecond {
		return l.l
	}
	l := &limiter{rate: r.BytesPerSecond, l: restore.NewLimiter(int64(min(r.BytesPerSecond, 1<<62)))}
	s.limiters[r.Name] = l
	return l.l
}

// sameServer reports whether the repository is on the cluster's endpoint, where one
// server could copy between the buckets.
func (s *Stores) sameServer(r *fsmpb.Repository) bool {
	region := func(r string) string {
		if r == "" {
			return objstore.DefaultRegion
		}
		return r
	}
	return s.cfg.Cluster.Bucket != "" && r.Endpoint == s.cfg.Cluster.Endpoint && region(r.Region) == region(s.cfg.Cluster.Region)
}

// JobStores are the stores a job of kind reads and writes; repository is the
// repository's record (nil for a restore).
func (s *Stores) JobStores(kind fsmpb.JobKind, r *fsmpb.Repository) (restore.JobStores, error) {
	if s.cfg.Store == nil {
		return restore.JobStores{}, errors.New("no object storage configured: start the node with --s3-bucket (and --s3-endpoint)")
	}
	if kind == fsmpb.JobKind_JOB_KIND_RESTORE {
		return restore.JobStores{Source: s.cfg.Store, Dest: s.cfg.Store}, nil
	}
	if r == nil {
		return restore.JobStores{}, fmt.Errorf("a %s job needs its repository", kind)
	}
	c, err := s.client(r)
	if err != nil {
		return restore.JobStores{}, err
	}
	st := restore.JobStores{Limiter: s.limit(r), Stream: true}
	switch kind {
	case fsmpb.JobKind_JOB_KIND_EXPORT:
		st.Source, st.Dest = s.cfg.Store, c.store
		if r.CopyToRepository && s.sameServer(r) {
			// With the repository's credentials, which read the cluster's bucket too.
			st.Dest, st.Stream = s.wrap(r.Name, c.s3.CopyingFrom(s.cfg.Cluster.Bucket)), false
		}
	case fsmpb.JobKind_JOB_KIND_REPOSITORY_RESTORE:
		st.Source, st.Dest = c.store, s.cfg.Store
		if own, ok := s.cfg.Store.(objstore.BucketCopier); ok && r.CopyFromRepository && s.sameServer(r) {
			st.Dest, st.Stream = own.CopyingFrom(r.Bucket), false
		}
	default:
		return restore.JobStores{}, fmt.Errorf("unknown job kind %d", kind)
	}
	return st, nil
}

func (s *Stores) wrap(name string, st objstore.Store) objstore.Store {
	if s.cfg.Wrap != nil {
		return s.cfg.Wrap(name, st)
	}
	return st
}

// Probe checks a repository from this node with its own credentials: it writes a
// probe object (with its CRC-32C), reads it back, finds it by listing, checks that a
// conditional create over it is refused, tries server-side copies both ways between
// the cluster's bucket and the repository's when they share an endpoint, and deletes
// what it wrote. A read-only repository is only read (its format marker) and listed.
// The answer names the step that failed. A failed probe is tried again (probeAttempts
// in all): S3 servers have transient refusals that S3's error codes do not mark as such
// (versitygw's posix backend once answered 409 ExistingObjectIsDirectory to one node's
// probe PUT while another node deleted its own probe under the same prefix).
// Credentials and the client are set up once: their errors are not transient.
func (s *Stores) Probe(ctx context.Context, r *fsmpb.Repository, probe string) *pb.RepositoryProbe {
	cfg, err := s.s3Config(r)
	if err != nil {
		return &pb.RepositoryProbe{Error: fmt.Sprintf("credentials: %v", err)}
	}
	s3, err := objstore.NewS3(ctx, cfg)
	if err != nil {
		return &pb.RepositoryProbe{Error: fmt.Sprintf("client: %v", err)}
	}
	defer s3.Close()
	var out *pb.RepositoryProbe
	for attempt := range probeAttempts {
		if out = s.probeOnce(ctx, s3, r, probe); out.Ok {
			return out
		}
		if attempt+1 < probeAttempts {
			select {
			case <-ctx.Done():
				return out
			case <-time.After(probeRetryDelay << attempt):
			}
		}
	}
	out.Error = fmt.Sprintf("%s (%d attempts)", out.Error, probeAttempts)
	return out
}

// probeAttempts and probeRetryDelay (doubled after each failure) shape Probe's retries.
const (
	probeAttempts   = 3
	probeRetryDelay = 250 * time.Millisecond
)

// probeOnce is one attempt of Probe's S3 requests, through s3.
func (s *Stores) probeOnce(ctx context.Context, s3 *objstore.S3, r *fsmpb.Repository, probe string) *pb.RepositoryProbe {
	out := &pb.RepositoryProbe{}
	fail := func(step string, err error) *pb.RepositoryProbe {
		out.Ok, out.Error = false, fmt.Sprintf("%s: %v", step, err)
		return out
	}
	prefix := r.Prefix
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if r.ReadOnly {
		// Never a write to a read-only repository: read its marker and list it.
		marker := prefix + "snapkeep-repository"
		rc, _, err := s3.Get(ctx, marker)
		if err != nil {
			return fail("read "+marker, err)
		}
		rc.Close()
		if _, err := s3.List(ctx, prefix, "", 1); err != nil {
			return fail("list "+prefix, err)
		}
		out.Ok = true
		return out
	}
	key := prefix + "probes/" + probe
	body := []byte("snapkeep repository probe " + probe)
	crc := crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli))
	var written []string
	defer func() {
		if len(written) > 0 {
			_, _ = s3.Delete(context.WithoutCancel(ctx), written)
		}
	}()
	if _, err := s3.Put(ctx, key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{CRC32C: crc, HasCRC32C: true}); err != nil {
		return fail("write "+key, err)
	}
	written = append(written, key)
	rc, _, err := s3.Get(ctx, key)
	if err != nil {
		return fail("read "+key, err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return fail("read "+key, err)
	}
	if !bytes.Equal(got, body) {
		return fail("read "+key, errors.New("the content read back differs from what was written"))
	}
	page, err := s3.List(ctx, key, "", 10)
	if err != nil {
		return fail("list "+key, err)
	}
	if len(page.Objects) == 0 || page.Objects[0].Key != key {
		return fail("list "+key, errors.New("the probe object was written but a listing does not show it"))
	}
	_, err = s3.Put(ctx, key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{IfNoneMatch: true})
	out.ConditionalCreate = errors.Is(err, objstore.ErrPreconditionFailed)
	if err != nil && !out.ConditionalCreate {
		return fail("conditional create over "+key, err)
	}
	if s.sameServer(r) && s.cfg.Store != nil {
		out.CopyToRepository, out.CopyFromRepository = s.probeCopies(ctx, s3, r, key, body, &written)
	}
	res, err := s3.Delete(ctx, written)
	if err == nil && len(res.Failed) > 0 {
		for k, e := range res.Failed {
			err = fmt.Errorf("%s: %w", k, e)
		}
	}
	if err != nil {
		return fail("delete "+key, err)
	}
	written = nil
	out.Ok = true
	return out
}

// probeCopies tries CopyObject from the cluster's bucket into the repository's (with
// the repository's credentials) and back (with the cluster's).
func (s *Stores) probeCopies(ctx context.Context, repo *objstore.S3, r *fsmpb.Repository, key string, body []byte, written *[]string) (to, from bool) {
	clusterKey := s.cfg.Root.Full("probes/" + key[strings.LastIndex(key, "/")+1:])
	if _, err := s.cfg.Store.Put(ctx, clusterKey, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{}); err != nil {
		s.cfg.Logger.Info("repository probe: cannot write to the cluster's bucket; copies will be streamed", "repository", r.Name, "err", err)
		return false, false
	}
	defer func() { _, _ = s.cfg.Store.Delete(context.WithoutCancel(ctx), []string{clusterKey}) }()
	copied := key + ".copied"
	if _, err := repo.CopyingFrom(s.cfg.Cluster.Bucket).Copy(ctx, clusterKey, copied); err == nil {
		*written = append(*written, copied)
		to = sameContent(ctx, repo, copied, body)
	} else {
		s.cfg.Logger.Info("repository probe: no server-side copy into the repository; exports will stream", "repository", r.Name, "err", err)
	}
	if own, ok := s.cfg.Store.(objstore.BucketCopier); ok {
		back := clusterKey + ".copied"
		if _, err := own.CopyingFrom(r.Bucket).Copy(ctx, key, back); err == nil {
			from = sameContent(ctx, s.cfg.Store, back, body)
			_, _ = s.cfg.Store.Delete(context.WithoutCancel(ctx), []string{back})
		} else {
			s.cfg.Logger.Info("repository probe: no server-side copy from the repository; restores from it will stream", "repository", r.Name, "err", err)
		}
	}
	return to, from
}

func sameContent(ctx context.Context, s objstore.Store, key string, want []byte) bool {
	rc, _, err := s.Get(ctx, key)
	if err != nil {
		return false
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	return err == nil && bytes.Equal(got, want)
}
