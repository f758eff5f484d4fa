// Package faults wraps an objstore.Store to inject failures, for tests of code
// that must survive a flaky object store: transient errors (a synthetic
// 503 SlowDown that objstore.IsTransient classifies as transient) at a chosen
// rate, and permanent failures of chosen keys (a deleted or forbidden object).
// It counts calls and injected failures per operation.
//
// Injection is deterministic given the seed, however calls interleave: whether
// the n-th call of an operation on a key fails depends only on (seed,
// operation, key, n). The Store is safe for concurrent use.
package faults

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"slices"
	"sync"

	"github.com/aws/smithy-go"

	"github.com/snapkeep/snapkeep/objstore"
)

// Operation names, as used in Options.Ops and the counters. "copy" covers Copy
// and MultipartCopy, "get" covers Get and GetRange, "put" covers Put and
// PutMultipart.
const (
	OpPut    = "put"
	OpGet    = "get"
	OpHead   = "head"
	OpCopy   = "copy"
	OpList   = "list"
	OpDelete = "delete"
)

var allOps = []string{OpPut, OpGet, OpHead, OpCopy, OpList, OpDelete}

// Options configure Wrap.
type Options struct {
	// Seed selects the pattern of injected failures.
	Seed int64
	// TransientRate is the probability (0..1) that a call fails with a
	// transient error.
	TransientRate float64
	// Ops are the operations that may fail transiently (OpCopy, …); empty means all.
	Ops []string
	// AfterRate is the share (0..1) of transient failures injected after the
	// inner call ran, as when the response is lost on its way back: a copy,
	// put or delete then took effect although the caller sees an error.
	AfterRate float64
	// MaxConsecutive caps the transient failures injected in a row for one
	// operation on one key (0: no cap), so a caller retrying a few times is
	// sure to get through.
	MaxConsecutive int
}

// Error is an injected transient failure: it looks like S3's
// "503 SlowDown" (it is a smithy.APIError with that code and status).
type Error struct {
	Op, Key string
	// After is set when the inner call ran (and took effect) before the failure.
	After bool
}

func (e *Error) Error() string {
	when := "before"
	if e.After {
		when = "after"
	}
	return fmt.Sprintf("injected fault (%s the call): %s %q: api error SlowDown: Please reduce your request rate.", when, e.Op, e.Key)
}

// ErrorCode, ErrorMessage and ErrorFault make Error a smithy.APIError.
func (e *Error) ErrorCode() string             { return "SlowDown" }
func (e *Error) ErrorMessage() string          { return "Please reduce your request rate." }
func (e *Error) ErrorFault() smithy.ErrorFault { return smithy.FaultServer }

// HTTPStatusCode is 503, as S3 sends with SlowDown.
func (e *Error) HTTPStatusCode() int { return http.StatusServiceUnavailable }

var _ smithy.APIError = (*Error)(nil)

// Store is an objstore.Store that injects failures into another one.
type Store struct {
	inner objstore.Store
	// state is shared with the Stores CopyingFrom makes.
	*state
}

// state is a Store's configuration, counters and per-key history.
type state struct {
	seed uint64
	ops  map[string]bool

	mu       sync.Mutex
	rate     float64
	after    float64
	maxRun   int
	calls    map[string]int
	injected map[string]int
	failed   map[string]int
	perKey   map[opKey]*keyState
	failKeys map[opKey]error
}

type opKey struct{ op, key string }

type keyState struct {
	calls int // calls so far
	run   int // transient failures injected in a row
}

var (
	_ objstore.Store        = (*Store)(nil)
	_ objstore.BucketCopier = (*Store)(nil)
)

// Wrap returns inner with failures injected as opts say.
func Wrap(inner objstore.Store, opts Options) *Store {
	ops := opts.Ops
	if len(ops) == 0 {
		ops = allOps
	}
	s := &Store{inner: inner, state: &state{
		seed:     uint64(opts.Seed),
		ops:      map[string]bool{},
		rate:     opts.TransientRate,
		after:    opts.AfterRate,
		maxRun:   opts.MaxConsecutive,
		calls:    map[string]int{},
		injected: map[string]int{},
		failed:   map[string]int{},
		perKey:   map[opKey]*keyState{},
		failKeys: map[opKey]error{},
	}}
	for _, op := range ops {
		if !slices.Contains(allOps, op) {
			panic(fmt.Sprintf("faults: unknown operation %q (want one of %v)", op, allOps))
		}
		s.ops[op] = true
	}
	return s
}

// Inner is the wrapped store.
func (s *Store) Inner() objstore.Store { return s.inner }

// CopyingFrom passes objstore.BucketCopier through: it returns a Store over the
// inner store's CopyingFrom(bucket) that injects the same failures as s and counts
// in the same counters (a call on either is one call of the operation). It panics
// if the inner store is not an objstore.BucketCopier, as Wrap does on a bad
// option: a test's mistake. Wrapping the result of CopyingFrom works as well.
func (s *Store) CopyingFrom(bucket string) objstore.Store {
	copier, ok := s.inner.(objstore.BucketCopier)
	if !ok {
		panic(fmt.Sprintf("faults: the wrapped %T cannot copy from another bucket", s.inner))
	}
	return &Store{inner: copier.CopyingFrom(bucket), state: s.state}
}

// SetTransientRate changes the rate of transient failures from now on (0 stops them).
func (s *Store) SetTransientRate(rate float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rate = rate
}

// FailKeys makes every op call on these keys fail with an access-denied
// error (errors.Is objstore.ErrAccessDenied), which no retry gets past. For
// copy the key may be the source or the destination; for list it is the
// prefix; for delete the key is reported in DeleteResult.Failed.
func (s *Store) FailKeys(op string, keys ...string) {
	s.FailKeysWith(op, objstore.ErrAccessDenied, keys...)
}

// FailKeysWith is FailKeys with the error to wrap, e.g. objstore.ErrNotFound
// for an object that has gone. A nil err clears the keys.
func (s *Store) FailKeysWith(op string, err error, keys ...string) {
	if !slices.Contains(allOps, op) {
		panic(fmt.Sprintf("faults: unknown operation %q (want one of %v)", op, allOps))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range keys {
		if err == nil {
			delete(s.failKeys, opKey{op, key})
		} else {
			s.failKeys[opKey{op, key}] = err
		}
	}
}

// Calls is how many times op was called (failed calls included).
func (s *Store) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Injected is how many transient failures were injected into op.
func (s *Store) Injected(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.injected[op]
}

// Failed is how many op calls failed because of FailKeys.
func (s *Store) Failed(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed[op]
}

// outcome is what to do with one call.
type outcome struct {
	err   error // fail with this
	after bool  // ...after running the inner call
}

// decide counts a call of op, transient failures keyed on key, and says
// whether and how it fails: permanently if FailKeys named any of failKeys.
func (s *Store) decide(op, key string, failKeys ...string) outcome {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	for _, k := range failKeys {
		if err, ok := s.failKeys[opKey{op, k}]; ok {
			s.failed[op]++
			return outcome{err: fmt.Errorf("injected failure: %s %q: %w", op, k, err)}
		}
	}
	st := s.perKey[opKey{op, key}]
	if st == nil {
		st = &keyState{}
		s.perKey[opKey{op, key}] = st
	}
	n := st.calls
	st.calls++
	if !s.ops[op] || s.rate <= 0 || (s.maxRun > 0 && st.run >= s.maxRun) || s.draw(op, key, n, 0) >= s.rate {
		st.run = 0
		return outcome{}
	}
	st.run++
	s.injected[op]++
	after := s.draw(op, key, n, 1) < s.after
	return outcome{err: &Error{Op: op, Key: key, After: after}, after: after}
}

// draw is a uniform number in [0, 1) fixed by the seed, the call and salt.
func (s *Store) draw(op, key string, n int, salt uint64) float64 {
	h := fnv.New64a()
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], s.seed)
	h.Write(buf[:])
	h.Write([]byte(op))
	h.Write([]byte{0})
	h.Write([]byte(key))
	binary.LittleEndian.PutUint64(buf[:], uint64(n)<<8|salt)
	h.Write(buf[:])
	x := mix(h.Sum64())
	return float64(x>>11) / (1 << 53)
}

// mix is splitmix64's finalizer: FNV's low bits are not uniform enough alone.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

func (s *Store) Put(ctx context.Context, key string, body io.Reader, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	o := s.decide(OpPut, key, key)
	if o.err != nil && !o.after {
		return objstore.ObjectInfo{}, o.err
	}
	info, err := s.inner.Put(ctx, key, body, size, opts)
	if err == nil && o.err != nil {
		return objstore.ObjectInfo{}, o.err
	}
	return info, err
}

// PutMultipart counts and fails as a Put ("put").
func (s *Store) PutMultipart(ctx context.Context, key string, body io.Reader, size, partSize int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	o := s.decide(OpPut, key, key)
	if o.err != nil && !o.after {
		return objstore.ObjectInfo{}, o.err
	}
	info, err := s.inner.PutMultipart(ctx, key, body, size, partSize, opts)
	if err == nil && o.err != nil {
		return objstore.ObjectInfo{}, o.err
	}
	return info, err
}

func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	o := s.decide(OpGet, key, key)
	if o.err != nil && !o.after {
		return nil, objstore.ObjectInfo{}, o.err
	}
	rc, info, err := s.inner.Get(ctx, key)
	if err == nil && o.err != nil {
		// The response started and broke off: hand back a body that fails.
		return &failingBody{rc: rc, err: o.err}, info, nil
	}
	return rc, info, err
}

func (s *Store) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	o := s.decide(OpGet, key, key)
	if o.err != nil && !o.after {
		return nil, o.err
	}
	rc, err := s.inner.GetRange(ctx, key, offset, length)
	if err == nil && o.err != nil {
		return &failingBody{rc: rc, err: o.err}, nil
	}
	return rc, err
}

// failingBody reads part of the object, then fails, like a connection that
// drops in the middle of a response.
type failingBody struct {
	rc   io.ReadCloser
	err  error
	read int
}

func (b *failingBody) Read(p []byte) (int, error) {
	if b.read > 0 {
		return 0, b.err
	}
	n, err := b.rc.Read(p[:min(len(p), 512)])
	b.read += n
	if n == 0 {
		if err == nil || errors.Is(err, io.EOF) {
			err = b.err
		}
		return 0, err
	}
	return n, nil
}

func (b *failingBody) Close() error { return b.rc.Close() }

func (s *Store) Head(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	o := s.decide(OpHead, key, key)
	if o.err != nil {
		return objstore.ObjectInfo{}, o.err
	}
	return s.inner.Head(ctx, key)
}

func (s *Store) Copy(ctx context.Context, src, dst string) (objstore.CopyInfo, error) {
	o := s.decide(OpCopy, dst, src, dst)
	if o.err != nil && !o.after {
		return objstore.CopyInfo{}, o.err
	}
	info, err := s.inner.Copy(ctx, src, dst)
	if err == nil && o.err != nil {
		return objstore.CopyInfo{}, o.err
	}
	return info, err
}

func (s *Store) MultipartCopy(ctx context.Context, src, dst string, srcSize, partSize int64) (objstore.CopyInfo, error) {
	o := s.decide(OpCopy, dst, src, dst)
	if o.err != nil && !o.after {
		return objstore.CopyInfo{}, o.err
	}
	info, err := s.inner.MultipartCopy(ctx, src, dst, srcSize, partSize)
	if err == nil && o.err != nil {
		return objstore.CopyInfo{}, o.err
	}
	return info, err
}

func (s *Store) List(ctx context.Context, prefix, token string, maxKeys int) (objstore.ListPage, error) {
	o := s.decide(OpList, prefix+"\x00"+token, prefix)
	if o.err != nil {
		return objstore.ListPage{}, o.err
	}
	return s.inner.List(ctx, prefix, token, maxKeys)
}

func (s *Store) Delete(ctx context.Context, keys []string) (objstore.DeleteResult, error) {
	first := ""
	if len(keys) > 0 {
		first = keys[0]
	}
	o := s.decide(OpDelete, first)
	if o.err != nil && !o.after {
		return objstore.DeleteResult{}, o.err
	}
	// Keys FailKeys names are left alone and reported failed.
	s.mu.Lock()
	refused := map[string]error{}
	for _, key := range keys {
		if err, ok := s.failKeys[opKey{OpDelete, key}]; ok {
			refused[key] = fmt.Errorf("injected failure: delete %q: %w", key, err)
		}
	}
	s.failed[OpDelete] += len(refused)
	s.mu.Unlock()
	rest := keys
	if len(refused) > 0 {
		rest = slices.DeleteFunc(slices.Clone(keys), func(k string) bool { _, ok := refused[k]; return ok })
	}
	res, err := s.inner.Delete(ctx, rest)
	if err != nil {
		return res, err
	}
	if o.err != nil {
		return objstore.DeleteResult{}, o.err
	}
	if res.Failed == nil {
		res.Failed = map[string]error{}
	}
	for k, e := range refused {
		res.Failed[k] = e
	}
	return res, nil
}
