package boot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The trash. A container's directory — its writable layer, with all its
// workload wrote — is released by moving it aside into STATE/trash, a
// rename, and removed there on a goroutine of its own: removing a large
// tree on slow flash takes minutes, and must hold neither the supervisor
// loop (which pets the watchdog) nor the boot. What a power cut leaves
// in the trash is removed at the next boot.

// trashSubdir is the trash's directory under the state directory.
const trashSubdir = "trash"

// trash moves trees aside and empties itself off the caller's goroutine.
type trash struct {
	dir  string
	log  *Logger
	kick chan struct{} // a removal is due; holds one at most
	done chan struct{} // closed when berth boot ends
	seq  atomic.Uint64
	stop sync.Once
}

// newTrash makes the trash in stateDir, private to root, and starts its
// goroutine (run by goSafe), which first removes what an earlier boot
// left there.
func newTrash(stateDir string, log *Logger, goSafe func(func())) (*trash, error) {
	dir := filepath.Join(stateDir, trashSubdir)
	if err := privateDir(dir); err != nil {
		return nil, err
	}
	t := &trash{dir: dir, log: log, kick: make(chan struct{}, 1), done: make(chan struct{})}
	t.kick <- struct{}{}
	goSafe(func() {
		for {
			select {
			case <-t.kick:
				t.empty()
			case <-t.done:
				return
			}
		}
	})
	return t, nil
}

// close ends the trash's goroutine once its emptying under way is done;
// what is left is removed at the next boot. A nil trash has none.
func (t *trash) close() {
	if t != nil {
		t.stop.Do(func() { close(t.done) })
	}
}

// put moves tree into the trash and has it removed there. A tree that
// is not there is nothing to do; one on another file system than the
// trash is removed in place, now.
func (t *trash) put(tree string) error {
	name := filepath.Base(tree) + "." + strconv.FormatInt(time.Now().UnixNano(), 36) + "." + strconv.FormatUint(t.seq.Add(1), 10)
	err := os.Rename(tree, filepath.Join(t.dir, name))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case errors.Is(err, syscall.EXDEV):
		if err := os.RemoveAll(tree); err != nil {
			return fmt.Errorf("clear %s: %w", tree, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("clear %s: move into %s: %w", tree, t.dir, err)
	}
	select {
	case t.kick <- struct{}{}:
	default: // an emptying is due already: it takes this one too
	}
	return nil
}

// empty removes everything in the trash.
func (t *trash) empty() {
	ents, err := os.ReadDir(t.dir)
	if err != nil {
		t.log.Printf("warning: trash %s: %v", t.dir, err)
		return
	}
	for _, e := range ents {
		p := filepath.Join(t.dir, e.Name())
		start := time.Now()
		if err := os.RemoveAll(p); err != nil {
			t.log.Printf("warning: trash: remove %s: %v", p, err)
			continue
		}
		if d := time.Since(start); d > time.Second {
			t.log.Printf("trash: removed %s in %s", e.Name(), d.Round(time.Millisecond))
		}
	}
}
