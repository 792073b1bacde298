package testutil

import (
	"bytes"
	"sync"
)

// SyncBuffer is a bytes.Buffer that one or more writer goroutines (a
// QEMU console, a registry's output) and a reader may share.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
