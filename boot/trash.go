package boot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The trash. A container's directory — its writable layer, with all its
// workload wrote — is released by moving it aside into STATE/trash, a
// rename, and removed there on a goroutine of its own: removing a large
// tree on slow flash takes minutes, and must hold neither the supervisor
// loop (which pets the watchdog) nor the boot. What a power cut or a
// shutdown leaves in the trash is removed at the next boot.
//
// The tree is the workload's: any depth, any number of entries. The
// removal holds two fds whatever its depth — the trash's and one
// directory's — by moving each subdirectory up into the trash as an entry
// of its own instead of descending into it; it follows no symlink and
// enters no mount (a mount point cannot be moved), and stops between any
// two entries when berth shuts down.

// trashSubdir is the trash's directory under the state directory.
const trashSubdir = "trash"

// trashAttempts bounds the removals of one entry that keeps failing
// (a file the workload made immutable): it is left for the next boot.
const trashAttempts = 3

// errTrashClosed stops a removal at shutdown.
var errTrashClosed = errors.New("the trash is closed")

// trash moves trees aside and empties itself off the caller's goroutine.
type trash struct {
	dir    string
	log    *Logger
	kick   chan struct{} // a removal is due; holds one at most
	done   chan struct{} // closed by close
	exited chan struct{} // closed when the goroutine has ended
	seq    atomic.Uint64
	stop   sync.Once
	// tries counts the failed removals of each entry, by name (every
	// name in the trash is its own), for the trash's life: one that failed trashAttempts
	// times is logged once and left for the next boot. Only the
	// emptying that holds mu uses it.
	mu    sync.Mutex
	tries map[string]int
	// inPlace: dir is a released tree itself, emptied and removed by
	// removeInPlace; nothing is made in it.
	inPlace bool
}

// newTrash makes the trash in stateDir, private to root, and starts its
// goroutine (run by goSafe), which first removes what an earlier boot
// left there.
func newTrash(stateDir string, log *Logger, goSafe func(func())) (*trash, error) {
	dir := filepath.Join(stateDir, trashSubdir)
	if err := privateDir(dir); err != nil {
		return nil, err
	}
	t := &trash{dir: dir, log: log, kick: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{}), tries: map[string]int{}}
	t.kick <- struct{}{}
	goSafe(func() {
		defer close(t.exited)
		for {
			select {
			case <-t.kick:
				t.empty(t.done)
			case <-t.done:
				return
			}
		}
	})
	return t, nil
}

// trashCloseWait bounds close's wait for a removal under way: one
// unlink on a hung device must not hold a shutdown.
const trashCloseWait = 5 * time.Second

// close stops the trash's goroutine between two entries and waits for
// it, briefly; what is left is removed at the next boot. A nil trash has
// none.
func (t *trash) close() {
	if t == nil {
		return
	}
	t.stop.Do(func() { close(t.done) })
	select {
	case <-t.exited:
	case <-time.After(trashCloseWait):
		t.log.Printf("warning: trash: a removal still runs after %s", trashCloseWait)
	}
}

// put moves tree into the trash and has it removed there. A tree that
// is not there is nothing to do; one on another file system than the
// trash is removed in place, now.
func (t *trash) put(tree string) error {
	err := t.putIn(tree)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.EXDEV):
		return removeInPlace(tree, t.log)
	case err != nil:
		return fmt.Errorf("clear %s: move into %s: %w", tree, t.dir, err)
	}
	select {
	case t.kick <- struct{}{}:
	default: // an emptying is due already: it takes this one too
	}
	return nil
}

// moveIn renames name (relative to dirfd) into the directory toDir
// (an fd) under a name of its own: stem, the time and a sequence number,
// never one already there (a leftover of an earlier boot whose clock
// said the same).
func (t *trash) moveIn(dirfd int, name string, toDir int, stem string) error {
	for {
		to := stem + "." + strconv.FormatInt(time.Now().UnixNano(), 36) + "." + strconv.FormatUint(t.seq.Add(1), 10)
		err := unix.Renameat2(dirfd, name, toDir, to, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EINVAL) { // a file system without RENAME_NOREPLACE
			var st unix.Stat_t
			if unix.Fstatat(toDir, to, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
				continue // rename(2) would replace it
			}
			err = unix.Renameat(dirfd, name, toDir, to)
		}
		if !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOTEMPTY) {
			return err
		}
	}
}

// removeInPlace removes tree now, on the caller's goroutine, when the
// trash cannot take it (it lies on another file system, or there is no
// trash), with the trash's bounds all the same: the tree is emptied as
// if it were the trash, its subdirectories moved up into it as entries
// of their own, and then removed. Whatever the tree's depth that holds a
// few fds, where os.RemoveAll holds one a level and, past PID 1's 4,096,
// runs PID 1 out of them; it makes nothing (a full disk leaves no inode
// to make one), follows no symlink and enters no mount, the tree
// itself included: a symlink or a file in its place is unlinked, a mount
// point there left whole (and an error).
func removeInPlace(tree string, log *Logger) error {
	fi, err := os.Lstat(tree)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err == nil && !fi.IsDir(): // planted: removed, never followed
		if err := unix.Unlink(tree); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("clear %s: %w", tree, err)
		}
		return nil
	}
	if log == nil {
		log = NewLogger(io.Discard) // its error names the tree
	}
	t := &trash{dir: tree, log: log, tries: map[string]int{}, inPlace: true}
	t.empty(nil)
	if err := unix.Rmdir(tree); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("clear %s: %w", tree, err)
	}
	return nil
}

// putIn is put's move: into the trash itself.
func (t *trash) putIn(tree string) error {
	fd, err := unix.Open(t.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return t.moveIn(unix.AT_FDCWD, tree, fd, filepath.Base(tree))
}

// empty removes the trash's entries until none is left but those that
// failed trashAttempts times, or until stop is closed. The
// subdirectories it moves up go into a staging directory of this
// emptying (.flat-N), removed at its end: a tree of a million
// directories leaves no directory of a million entries behind. Where
// that cannot be made (openFlat), or for a tree released in place, they
// go into the trash (the tree) itself.
func (t *trash) empty(stop <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	top, err := unix.Open(t.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.log.Printf("warning: trash %s: %v", t.dir, err)
		return
	}
	defer unix.Close(top)
	if t.inPlace && mountRoot(top, "") {
		t.log.Printf("warning: %s is a mount point: not emptied", t.dir)
		return
	}
	flat, flatName := t.openFlat(top)
	if flat != top {
		// Empty at the end, unless an entry in it is left: then the next
		// emptying takes it as an entry of the trash.
		defer unix.Unlinkat(top, flatName, unix.AT_REMOVEDIR)
		defer unix.Close(flat)
	}
	for _, dir := range []int{top, flat} {
		for {
			progress, err := t.pass(dir, flat, flatName, stop)
			if err != nil {
				if !errors.Is(err, errTrashClosed) {
					t.log.Printf("warning: trash %s: %v", t.dir, err)
				}
				return
			}
			if !progress {
				break
			}
		}
	}
}

// openFlat makes and opens the staging directory of an emptying in top.
// When it cannot be made — a disk whose inodes the workload used up, or
// a tree released in place — the subdirectories move up into top
// itself: flat is top, and flatName "".
func (t *trash) openFlat(top int) (flat int, flatName string) {
	if t.inPlace {
		return top, ""
	}
	flatName = ".flat-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatUint(t.seq.Add(1), 10)
	err := unix.Mkdirat(top, flatName, 0o700)
	if err == nil {
		if flat, err = unix.Openat(top, flatName, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
			return flat, flatName
		}
		unix.Unlinkat(top, flatName, unix.AT_REMOVEDIR)
	}
	t.log.Printf("warning: trash %s: %v: subdirectories move into the trash itself", t.dir, err)
	return top, ""
}

// pass reads the directory dir (the trash, or the staging directory flat)
// once, a batch at a time, and removes what it finds, moving
// subdirectories into flat; progress says it tried one.
func (t *trash) pass(dir, flat int, flatName string, stop <-chan struct{}) (progress bool, err error) {
	fd, err := unix.Openat(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err
	}
	d := os.NewFile(uintptr(fd), t.dir)
	defer d.Close()
	for {
		ents, rerr := d.ReadDir(256)
		for _, e := range ents {
			name := e.Name()
			if name == flatName || t.tries[name] >= trashAttempts {
				continue
			}
			if closed(stop) {
				return progress, errTrashClosed
			}
			progress = true
			if err := t.remove(dir, name, flat, stop); err != nil {
				if errors.Is(err, errTrashClosed) {
					return progress, err
				}
				if t.tries[name]++; t.tries[name] == trashAttempts {
					t.log.Printf("warning: trash: %q: %v; left for the next boot", name, err)
				}
			}
		}
		if rerr == io.EOF || len(ents) == 0 {
			return progress, nil
		}
		if rerr != nil {
			return progress, rerr
		}
	}
}

// remove removes the entry name of dir: a file at once; a directory's
// files, its subdirectories moved into flat as entries of their own,
// then the directory itself. It goes on past an entry it cannot remove,
// and then leaves the directory, with the first error. The staging
// directory of an earlier emptying keeps its entries' names, and with
// them their counts of tries.
func (t *trash) remove(dir int, name string, flat int, stop <-chan struct{}) error {
	err := unix.Unlinkat(dir, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return err
	}
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil // another emptying took it
	}
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(fd), name)
	defer d.Close()
	if mountRoot(fd, "") {
		return errors.New("a mount point: not entered")
	}
	keep := strings.HasPrefix(name, ".flat-")
	var first error
	for {
		ents, rerr := d.ReadDir(256)
		for _, e := range ents {
			if closed(stop) {
				return errTrashClosed
			}
			err := unix.Unlinkat(fd, e.Name(), 0)
			if errors.Is(err, unix.EISDIR) && keep {
				err = unix.Renameat2(fd, e.Name(), flat, e.Name(), unix.RENAME_NOREPLACE)
			}
			if errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EINVAL) {
				err = t.moveIn(fd, e.Name(), flat, "d")
			}
			if err != nil && !errors.Is(err, unix.ENOENT) && first == nil {
				first = fmt.Errorf("%q: %w", e.Name(), err)
			}
		}
		if rerr == io.EOF || len(ents) == 0 {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if first != nil {
		return first
	}
	if err := unix.Unlinkat(dir, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// closed reports whether stop is closed; a nil stop never is.
func closed(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}
