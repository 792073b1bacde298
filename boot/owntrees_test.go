package boot

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOwnTreesKeptFromContainers boots berth on this host with
// containers whose config passes berth check, as the paths are written,
// but whose writable binds reach berth's image cache through a
// follow_symlink link, hold it through one, or reach its state directory (berth boot
// --state) by "..": none starts, and nothing is written there. A
// log_file in the state is not opened, nothing is made on its way, and
// its container runs. A writable bind of an ordinary directory and a
// read-only one of the cache still work.
func TestOwnTreesKeptFromContainers(t *testing.T) {
	other := realPath(t.TempDir())
	cache := filepath.Join(other, "cache")
	link, up := filepath.Join(other, "link"), filepath.Join(t.TempDir(), "up")
	mustSymlink(t, cache, link)
	mustSymlink(t, other, up)
	alias := filepath.Join(t.TempDir(), "alias") // the cache, bind-mounted
	mustMkdirAll(t, cache)
	mustBind(t, cache, alias)
	const body = `
[[container]]
name = %q
image = "IMAGE"
command = ["sh", "-c", "touch /x/pwned-%[1]s; echo up; exec sleep 100000"]
stop_timeout = "1s"
%s
[[container.mount]]
source = %q
target = "/x"
%s
`
	cfg := "[images]\ncache = " + fmt.Sprintf("%q", cache) + "\n" +
		fmt.Sprintf(body, "viafollow", "", link, "follow_symlink = true") +
		fmt.Sprintf(body, "holdscache", "", up, "follow_symlink = true") +
		fmt.Sprintf(body, "viadotdot", "", "SHARED/../state", "") +
		fmt.Sprintf(body, "logstate", `log_file = "STATEDIR/logs/app.log"`, "SHARED", "") +
		fmt.Sprintf(body, "readcache", "", link, "follow_symlink = true\nreadonly = true") +
		fmt.Sprintf(body, "viaalias", "", alias, "")
	h := startHostBoot(t, cfg, nil, nil)
	failed := func(name, want string) {
		t.Helper()
		h.waitFor(name+"'s start to fail", time.Minute, func() bool {
			return strings.Contains(h.ps()[name].LastExit, "berth's")
		})
		if got := h.ps()[name].LastExit; !strings.Contains(got, want) {
			t.Errorf("%s: last exit %q, want it to say %q", name, got, want)
		}
	}
	failed("viafollow", "("+cache+") is in berth's image cache "+cache+": ")
	failed("holdscache", "("+other+") holds berth's image cache "+cache+": ")
	failed("viadotdot", "is in berth's state directory "+h.state+": ")
	failed("viaalias", "("+alias+", the same directory as "+cache+") is in berth's image cache "+cache+": ")
	h.waitFor("logstate and readcache up", time.Minute, func() bool {
		return h.ps()["logstate"].State == "running" && h.ps()["readcache"].State == "running" &&
			slices.Contains(h.logs("logstate"), "up") && slices.Contains(h.logs("readcache"), "up")
	})
	if _, err := os.Stat(filepath.Join(h.shared, "pwned-logstate")); err != nil {
		t.Errorf("a writable bind of an ordinary directory: %v", err)
	}
	for _, p := range []string{filepath.Join(cache, "pwned-viafollow"), filepath.Join(cache, "pwned-readcache"), filepath.Join(cache, "pwned-viaalias"),
		filepath.Join(other, "pwned-holdscache"), filepath.Join(h.state, "pwned-viadotdot"), filepath.Join(h.state, "logs")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was made", p)
		}
	}
	want := "log file " + h.state + "/logs/app.log: " + h.state + " is in berth's state directory " + h.state + ": choose a log_file outside it"
	if !strings.Contains(h.console.String(), want) {
		t.Errorf("no warning %q on the console", want)
	}
}

// mustBind bind-mounts dir on to, made, until the test ends.
func mustBind(t *testing.T, dir, to string) {
	t.Helper()
	mustMkdirAll(t, to)
	if err := unix.Mount(dir, to, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mount %s on %s: %v", dir, to, err)
	}
	t.Cleanup(func() { unix.Unmount(to, unix.MNT_DETACH) })
}

// containsInOrder reports whether s holds each of parts, in order.
func containsInOrder(s string, parts []string) bool {
	for _, p := range parts {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}

// bindCase is a writable bind's source and what its check must say, its
// parts in order separated by "…" ("": nothing, it is let through).
type bindCase struct{ source, err string }

// checkBinds opens each source as a follow_symlink bind's and checks it
// against own.
func checkBinds(t *testing.T, own ownTrees, binds []bindCase) {
	t.Helper()
	for _, b := range binds {
		h, err := os.OpenFile(b.source, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = own.bindCheck(b.source)(h)
		h.Close()
		if b.err == "" && err != nil || b.err != "" && (err == nil || !containsInOrder(err.Error(), strings.Split(b.err, "…"))) {
			t.Errorf("bind %s: %v, want %q", b.source, err, b.err)
		}
	}
}

// logCase is a log_file, what its check must say ("": nothing, it is
// opened) and a path that must not have been made ("": none).
type logCase struct{ file, err, notMade string }

// checkLogs opens each log_file with own's check.
func checkLogs(t *testing.T, own ownTrees, logs []logCase) {
	t.Helper()
	for _, l := range logs {
		f, err := openRotatingFile(l.file, 4096, 1, nil, own.logDirCheck)
		if f != nil {
			f.close()
		}
		if l.err == "" && err != nil || l.err != "" && (err == nil || !strings.Contains(err.Error(), l.err)) {
			t.Errorf("log_file %s: %v, want %q", l.file, err, l.err)
		}
		if _, err := os.Lstat(l.notMade); l.notMade != "" && err == nil {
			t.Errorf("log_file %s: %s was made", l.file, l.notMade)
		}
	}
}

// TestOwnTreesBindAliases (root): a bind mount of berth's cache, of a
// directory in it or of one holding it, mounted elsewhere — or a writable
// one below a bind's source, which a recursive bind takes along — is
// found by its place in the filesystem, whatever path it is reached by.
func TestOwnTreesBindAliases(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for bind mounts")
	}
	top := realPath(t.TempDir())
	v, cache, state := filepath.Join(top, "var"), filepath.Join(top, "var", "cache"), filepath.Join(top, "state")
	mustMkdirAll(t, filepath.Join(cache, "sub", "deep"))
	mustMkdirAll(t, filepath.Join(top, "plain"))
	own := ownTrees{}.add(cache, "image cache").add(state, "state directory")
	a := func(name string) string { return filepath.Join(top, "a", name) }
	mustBind(t, cache, a("cache"))
	mustBind(t, filepath.Join(cache, "sub"), a("sub"))
	mustBind(t, v, a("var"))
	mustBind(t, filepath.Join(top, "plain"), a("plain"))
	ro := filepath.Join(top, "b", "cache")
	mustBind(t, cache, ro)
	if err := unix.Mount("", ro, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	checkBinds(t, own, []bindCase{
		{a("cache"), "(" + a("cache") + ", the same directory as " + cache + ") is in berth's image cache " + cache + ": "},
		{a("cache") + "/sub/deep", "(" + a("cache") + "/sub/deep, the same directory as " + cache + "/sub/deep) is in berth's image cache"},
		{a("sub"), "(" + a("sub") + ", the same directory as " + cache + "/sub) is in berth's image cache"},
		{a("var"), "(" + a("var") + ", the directory …, which holds its directory …) holds berth's image cache " + cache + ": "},
		{a("plain"), ""},
		{filepath.Join(top, "a"), "holds the mount " + a("cache") + " (the same directory as " + cache + "), which is in berth's image cache " + cache + ": "},
		{filepath.Join(top, "b"), ""}, // holds only a read-only bind of the cache
	})
	// The tree itself a bind mount of a directory of another filesystem's
	// (or of this one's) directory: what holds that directory holds the
	// tree, though it is not above the tree's path.
	images := filepath.Join(top, "trees", "images")
	mustMkdirAll(t, filepath.Join(top, "data", "images"))
	mustBind(t, filepath.Join(top, "data", "images"), images)
	mustBind(t, filepath.Join(top, "data"), filepath.Join(top, "exp", "d"))
	checkBinds(t, ownTrees{}.add(images, "image cache"), []bindCase{
		{filepath.Join(top, "data"), "(" + filepath.Join(top, "data") + ", the directory …, which holds its directory …) holds berth's image cache " + images + ": "},
		{filepath.Join(top, "exp"), "holds the mount " + filepath.Join(top, "exp", "d") + " (the directory …, which holds its directory …), which holds berth's image cache " + images},
		{filepath.Join(top, "trees"), "holds berth's image cache"},
		{filepath.Join(top, "plain"), ""},
	})
	// A log_file through an alias; one right in it, whose last directory
	// is a mount point: checked on the mount's place, not on what it hides.
	checkLogs(t, own, []logCase{
		{filepath.Join(a("var"), "cache", "logs", "x.log"), a("var") + "/cache (the same directory as " + cache + ") is in berth's image cache", filepath.Join(cache, "logs")},
		{filepath.Join(a("cache"), "x.log"), a("cache") + " (the same directory as " + cache + ") is in berth's image cache", filepath.Join(cache, "x.log")},
	})
}

// TestOwnTreesChecks: the checks on the handles berth opens, without
// root: a bind source is refused when it is, lies in or holds one of
// berth's trees, through symlinks or not; a log_file's directories are
// refused before anything is made in one of them.
func TestOwnTreesChecks(t *testing.T) {
	top := realPath(t.TempDir())
	cache, state := filepath.Join(top, "real", "cache"), filepath.Join(top, "state")
	mustMkdirAll(t, cache)
	mustMkdirAll(t, filepath.Join(top, "other"))
	mustSymlink(t, filepath.Join(top, "real"), filepath.Join(top, "link"))
	var own ownTrees
	own = own.add(filepath.Join(top, "link", "cache"), "image cache").add(state, "state directory")
	if len(own) != 3 || own[1].path != cache {
		t.Fatalf("trees %v: want the cache as written and resolved, and the state", own)
	}
	if got := realPath(filepath.Join(top, "link", "cache", "not", "yet")); got != filepath.Join(cache, "not", "yet") {
		t.Errorf("realPath of a path not made yet: %s", got)
	}
	checkBinds(t, own, []bindCase{
		{filepath.Join(top, "link", "cache"), "(" + cache + ") is in berth's image cache " + cache + ": "},
		{cache + "/", "is in berth's image cache " + cache + ": "},
		{filepath.Join(top, "real"), "holds berth's image cache " + cache},
		{top, "holds berth's image cache " + filepath.Join(top, "link", "cache")},
		{filepath.Join(top, "other"), ""},
		{filepath.Join(top, "link"), "(" + filepath.Join(top, "real") + ") holds berth's image cache " + cache},
	})
	checkLogs(t, own, []logCase{
		{filepath.Join(state, "logs", "app.log"), ": " + state + " is in berth's state directory " + state + ": choose", state},
		{filepath.Join(top, "link", "cache", "a", "b.log"), "link is a symlink", filepath.Join(cache, "a")},
		{filepath.Join(cache, "a", "b.log"), ": " + cache + " is in berth's image cache", filepath.Join(cache, "a")},
		{filepath.Join(top, "real", "x.log"), "", ""},
		{filepath.Join(top, "other", "d", "x.log"), "", ""},
	})
}

// TestBindSourcesOverlapState: without [storage], berth check refuses a
// writable bind in or holding /var/lib/berth, berth's state, also when
// the cache is elsewhere; a read-only one is allowed.
func TestBindSourcesOverlapState(t *testing.T) {
	const head, state = "[images]\ncache = \"/srv/images\"\n", `overlaps berth's state /var/lib/berth`
	for _, tc := range []struct {
		source   string
		readonly bool
		err      string
	}{
		{"/var/lib/berth/x", false, state},
		{"/var/lib/berth", false, state},
		{"/var/lib", false, state},
		{"/var/lib", true, ""},
		{"/var/lib/berthx", false, ""},
		{"/var/log", false, ""},
	} {
		checkBindConfig(t, "source "+tc.source, head, tc.source, tc.readonly, tc.err, "source")
	}
}

// TestOwnTreesKeepOldCache: after a reload to another images.cache,
// the cache the kept containers' layers come from stays one of berth's
// trees, beside the new one and the state.
func TestOwnTreesKeepOldCache(t *testing.T) {
	top := realPath(t.TempDir())
	state, old, next := filepath.Join(top, "state"), filepath.Join(top, "old"), filepath.Join(top, "new")
	s := newSupervisor(&booter{opts: Options{StateDir: state}, log: NewLogger(io.Discard)}, &Config{})
	for _, root := range []string{old, next} {
		if _, err := s.imageCache(&Config{Images: ImagesConfig{Cache: root}}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, tree := range s.ownTreesFor(&Config{Images: ImagesConfig{Cache: next}}) {
		got = append(got, tree.what+" "+tree.path)
	}
	for _, want := range []string{"image cache " + old, "image cache " + next, "state directory " + state} {
		if !slices.Contains(got, want) {
			t.Errorf("trees %q: no %q", got, want)
		}
	}
}
