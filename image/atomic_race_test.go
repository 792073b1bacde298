package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Races with a process that writes DIR's parent (a container's volume an
// image is unpacked into) and swaps DIR, or the staging directory beside
// it, for a symlink while berth works: hooks make each swap happen at the
// worst moment. Nothing outside DIR may be written or removed.

// swapForSymlink renames p to p+".moved" and puts a symlink to victim in
// its place, as rename(2) and symlink(2) by the other process would.
func swapForSymlink(t *testing.T, p, victim string) {
	t.Helper()
	if err := os.Rename(p, p+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, p); err != nil {
		t.Fatal(err)
	}
}

// makeVictim makes a directory outside DIR holding files, and returns it
// and a check that they are all still there and that nothing was added.
func makeVictim(t *testing.T) (string, func()) {
	t.Helper()
	victim := t.TempDir()
	files := []string{"etc/passwd", "usr/bin/sh", "var/log/x"}
	for _, f := range files {
		p := filepath.Join(victim, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("victim"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return victim, func() {
		t.Helper()
		for _, f := range files {
			if b, err := os.ReadFile(filepath.Join(victim, f)); err != nil || string(b) != "victim" {
				t.Errorf("victim %s: %q, %v", f, b, err)
			}
		}
		if ents, _ := os.ReadDir(victim); len(ents) != 3 {
			t.Errorf("victim holds %d entries, want 3 (etc usr var): written outside DIR", len(ents))
		}
	}
}

// TestStaleRollbackSwappedDir: a stale staging directory in DIR with a
// journal naming etc, usr and var and no tree (so all count as moved);
// once berth has read the journal, DIR is swapped for a symlink to a
// victim directory. The rollback removes those names from the DIR it
// opened (now at DIR.moved), never through the symlink: the victim's
// files survive.
func TestStaleRollbackSwappedDir(t *testing.T) {
	_, img := packTree(t)
	victim, intact := makeVictim(t)
	base := t.TempDir()
	dest := filepath.Join(base, "dest")
	stale := filepath.Join(dest, stagePrefix+"x")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, journalName), []byte("etc\x00usr\x00var"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"etc", "usr", "var"} {
		mkdir(t, filepath.Join(dest, d)) // what the dead unpack moved
	}
	swapped := false
	staleAfterJournal = func(holder string) {
		if holder == dest && !swapped {
			swapped = true
			swapForSymlink(t, dest, victim)
		}
	}
	defer func() { staleAfterJournal = nil }()
	_, err := Unpack(img, dest, UnpackOptions{})
	if !swapped {
		t.Fatalf("the hook never ran (%v)", err)
	}
	t.Logf("unpack: %v", err)
	intact()
	// The rollback went to the DIR berth opened, wherever it is now.
	for _, d := range []string{"etc", "usr", "var", stagePrefix + "x"} {
		if _, err := os.Lstat(filepath.Join(dest+".moved", d)); !os.IsNotExist(err) {
			t.Errorf("%s was not rolled back in the DIR opened: %v", d, err)
		}
	}
}

// TestUnpackSwappedDir: between opening DIR and the extractor opening
// its root (the whole of planning), DIR is swapped for a symlink to a
// victim directory. Nothing is written into the victim. A DIR that held
// files is unpacked into through the handle opened (it is now at
// DIR.moved) and the unpack succeeds; a missing or empty DIR is staged
// beside it and the final rename onto what is now a symlink fails with an
// error naming DIR.
func TestUnpackSwappedDir(t *testing.T) {
	want, img := packTree(t)
	for _, k := range []destKind{destKinds[0], destKinds[1], destKinds[3]} {
		t.Run(k.name, func(t *testing.T) {
			victim, intact := makeVictim(t)
			dest := filepath.Join(t.TempDir(), "dest")
			k.setup(t, dest)
			swapped := false
			targetAfterOpen = func(*target) {
				swapped = true
				if k.name == "missing" {
					mkdir(t, dest)
				}
				swapForSymlink(t, dest, victim)
			}
			defer func() { targetAfterOpen = nil }()
			_, err := Unpack(img, dest, UnpackOptions{})
			if !swapped {
				t.Fatalf("the hook never ran (%v)", err)
			}
			intact()
			switch k.name {
			case "not empty":
				if err != nil {
					t.Fatalf("unpack into the DIR opened: %v", err)
				}
				got := snapshot(t, dest+".moved")
				delete(got, "keep.txt")
				compareTrees(t, want, got)
			default:
				if err == nil || !strings.Contains(err.Error(), "move the unpacked tree to "+dest) {
					t.Fatalf("error %v, want the move onto %s refused", err, dest)
				}
			}
			noStaging(t, filepath.Dir(dest))
		})
	}
}

// TestUnpackSwappedStaging: while a missing DIR is unpacked, the staging
// directory beside it is renamed away and a symlink to a victim directory
// put in its place. berth works on the staging directory it opened:
// nothing is written into the victim (checked once the tree is unpacked,
// too: a rename through the symlink could carry it away before the end),
// the unpack succeeds and DIR gets the tree. The symlink, in the staging
// directory's place when berth removes it, is removed, not followed.
func TestUnpackSwappedStaging(t *testing.T) {
	want, img := packTree(t)
	victim, intact := makeVictim(t)
	base := t.TempDir()
	dest := filepath.Join(base, "dest")
	var stage string
	targetAfterOpen = func(*target) {
		ents, _ := os.ReadDir(base)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), stagePrefix) {
				stage = filepath.Join(base, e.Name())
				swapForSymlink(t, stage, victim)
				return
			}
		}
	}
	unpacked := -1
	crashPoint = func(step string) {
		if step == "unpacked" {
			ents, _ := os.ReadDir(victim)
			unpacked = len(ents)
		}
	}
	defer func() { targetAfterOpen, crashPoint = nil, nil }()
	_, err := Unpack(img, dest, UnpackOptions{})
	if unpacked != 3 {
		t.Errorf("once unpacked, the victim held %d entries, want 3: written outside DIR", unpacked)
	}
	if stage == "" {
		t.Fatalf("no staging directory beside DIR to swap (%v)", err)
	}
	intact()
	if err != nil {
		t.Fatal(err)
	}
	compareTrees(t, want, snapshot(t, dest))
	if _, err := os.Lstat(stage); !os.IsNotExist(err) {
		t.Errorf("the symlink put in the staging directory's place: %v", err)
	}
	if ents, _ := os.ReadDir(stage + ".moved"); len(ents) != 0 {
		t.Errorf("the staging directory moved away holds %d entries", len(ents))
	}
}
