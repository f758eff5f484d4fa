// Package faultfile reads the fault files of the fault-injection harness: a file the
// harness writes (whole, renamed into place) and removes to heal, which a faultinject
// build's hook reads on every call. Only faultinject builds use it.
package faultfile

import (
	"os"
	"sync"
	"time"
)

// Reread bounds how long a change to the file takes to show.
const Reread = 20 * time.Millisecond

// File is a fault file, read at most once per Reread. Safe for concurrent use.
type File struct {
	path string

	mu      sync.Mutex
	content string
	readAt  time.Time // monotonic; zero: never read
}

// New returns the fault file at path ("" or a missing file: no fault).
func New(path string) *File { return &File{path: path} }

// Content returns the file's content, "" when there is none.
func (f *File) Content() string {
	if f == nil || f.path == "" {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.readAt.IsZero() && time.Since(f.readAt) < Reread {
		return f.content
	}
	f.readAt = time.Now()
	f.content = ""
	if b, err := os.ReadFile(f.path); err == nil {
		f.content = string(b)
	}
	return f.content
}
