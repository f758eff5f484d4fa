package clienttest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/snapkeep/snapkeep/objstore"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MemStore is an in-memory objstore.Store. Like S3 with checksums, Put refuses a body
// whose size or CRC-32C does not match what the caller announced.
type MemStore struct {
	mu      sync.Mutex
	objects map[string]memObject
}

type memObject struct {
	data []byte
	info objstore.ObjectInfo
}

var _ objstore.Store = (*MemStore)(nil)

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{objects: make(map[string]memObject)}
}

// Keys returns every key in lexical order.
func (m *MemStore) Keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := make([]string, 0, len(m.objects))
	for k := range m.objects {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Corrupt flips one byte of the object at key (for tests of verifiers), keeping its
// recorded checksum. It reports whether the object existed and was not empty.
func (m *MemStore) Corrupt(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok || len(o.data) == 0 {
		return false
	}
	o.data = slices.Clone(o.data)
	o.data[len(o.data)/2] ^= 0xff
	m.objects[key] = o
	return true
}

func (m *MemStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return objstore.ObjectInfo{}, err
	}
	data, err := io.ReadAll(io.LimitReader(body, size+1))
	if err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("put %q: read body: %w", key, err)
	}
	if int64(len(data)) != size {
		return objstore.ObjectInfo{}, fmt.Errorf("put %q: body has %d bytes, want %d", key, len(data), size)
	}
	sum := crc32.Checksum(data, castagnoli)
	if opts.HasCRC32C && sum != opts.CRC32C {
		return objstore.ObjectInfo{}, fmt.Errorf("put %q: CRC-32C %08x does not match the announced %08x", key, sum, opts.CRC32C)
	}
	etag := md5.Sum(data)
	now := time.Now()
	info := objstore.ObjectInfo{Key: key, Size: size, ETag: hex.EncodeToString(etag[:]), LastModified: now, CRC32C: sum, HasCRC32C: true}
	m.mu.Lock()
	m.objects[key] = memObject{data: data, info: info}
	m.mu.Unlock()
	return info, nil
}

func (m *MemStore) lookup(ctx context.Context, key string) (memObject, error) {
	if err := ctx.Err(); err != nil {
		return memObject{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return memObject{}, fmt.Errorf("%q: %w", key, objstore.ErrNotFound)
	}
	return o, nil
}

func (m *MemStore) Get(ctx context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	o, err := m.lookup(ctx, key)
	if err != nil {
		return nil, objstore.ObjectInfo{}, err
	}
	return io.NopCloser(bytes.NewReader(o.data)), o.info, nil
}

func (m *MemStore) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	o, err := m.lookup(ctx, key)
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset > int64(len(o.data)) {
		return nil, fmt.Errorf("get %q: offset %d outside the object's %d bytes", key, offset, len(o.data))
	}
	end := int64(len(o.data))
	if length >= 0 {
		end = min(end, offset+length)
	}
	return io.NopCloser(bytes.NewReader(o.data[offset:end])), nil
}

func (m *MemStore) Head(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	o, err := m.lookup(ctx, key)
	return o.info, err
}

func (m *MemStore) Copy(ctx context.Context, src, dst string) (objstore.ObjectInfo, error) {
	o, err := m.lookup(ctx, src)
	if err != nil {
		return objstore.ObjectInfo{}, err
	}
	o.info.Key = dst
	o.info.LastModified = time.Now()
	m.mu.Lock()
	m.objects[dst] = o
	m.mu.Unlock()
	return o.info, nil
}

func (m *MemStore) MultipartCopy(ctx context.Context, src, dst string, _, _ int64) (objstore.ObjectInfo, error) {
	return m.Copy(ctx, src, dst)
}

func (m *MemStore) List(ctx context.Context, prefix, token string, maxKeys int) (objstore.ListPage, error) {
	if err := ctx.Err(); err != nil {
		return objstore.ListPage{}, err
	}
	if maxKeys <= 0 {
		maxKeys = 1000
	}
	var page objstore.ListPage
	for _, k := range m.Keys() {
		if !strings.HasPrefix(k, prefix) || k <= token {
			continue
		}
		if len(page.Objects) == maxKeys {
			page.NextToken = page.Objects[len(page.Objects)-1].Key
			break
		}
		if info, err := m.Head(ctx, k); err == nil {
			page.Objects = append(page.Objects, info)
		}
	}
	return page, nil
}

func (m *MemStore) Delete(ctx context.Context, keys []string) (objstore.DeleteResult, error) {
	if err := ctx.Err(); err != nil {
		return objstore.DeleteResult{}, err
	}
	if len(keys) > objstore.MaxDeleteBatch {
		return objstore.DeleteResult{}, fmt.Errorf("delete: %d keys, at most %d per call", len(keys), objstore.MaxDeleteBatch)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	res := objstore.DeleteResult{}
	for _, k := range keys {
		delete(m.objects, k)
		res.Deleted = append(res.Deleted, k)
	}
	return res, nil
}
