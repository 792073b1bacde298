package boot_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"berth/internal/vm"
)

// powercutConfig is the appliance of the update power cuts: the data
// partition holds the generations; svc says which version it is (%[1]s);
// admin, the same in both versions, updates svc to the other version.
const powercutConfig = `
[storage]
device = "LABEL=data"
timeout = "30s"

[update]
grace_period = "1s" # admin has no health check

[[container]]
name = "svc"
image = "/images/demo.tar.zst"
command = ["/bin/sh", "-c", "trap 'exit 0' TERM; echo svc runs v%[1]s; while :; do sleep 1; done"]
[container.health]
command = ["true"]
interval = "300ms"
retries = 2

[[container]]
name = "admin"
image = "/images/demo.tar.zst"
command = ["/bin/sh", "/demo/powercut-admin.sh"]
` + vm.BerthCLIMounts + `
[[container.mount]]
source = "/etc/powercut"
target = "/powercut"
readonly = true
`

// powercutAdmin waits for svc and no update in progress, shows the
// generation and which svc runs, then, unless /powercut/mode says
// final, applies the other version of svc and waits for the power cut.
const powercutAdmin = `#!/bin/sh
until berth ps | grep -Eq '^svc +running +healthy' && ! berth status | grep '^generation' | grep -q trying; do sleep 0.3; done
echo "== now: $(berth status | grep '^generation')"
v=$(berth logs svc | sed -n 's/^.*svc runs v//p' | sort -u | tr '\n' ' ')
echo "== svc versions this boot: $v"
if [ "$(cat /powercut/mode)" = final ]; then berth ps; berth poweroff; exit 0; fi
next=2; [ "$v" = "2 " ] && next=1
echo "== update begins: to v$next"
berth apply /etc/powercut/v$next.toml; echo "== apply: $?"
while :; do sleep 1; done
`

var (
	updateBegins = regexp.MustCompile(`admin \| == update begins`)
	nowLine      = regexp.MustCompile(`admin \| == now: generation +(\d+) committed`)
	svcVersions  = regexp.MustCompile(`admin \| == svc versions this boot: (.*)`)
)

// TestQEMUUpdatePowerCut cuts the power (SIGKILL of QEMU) five times at
// a random moment in the 3 s after an update began (amd64): each boot
// applies the version of svc that does not run. After each cut, the
// disk (mounted on this host) holds a record that parses and names
// whole generations — config.toml byte for byte one of the two configs,
// generation.json of that number — and no numbered directory is partial.
// Each next boot runs one version of svc only, the one of a generation
// the record named (committed or being tried), and berth status's
// committed generation is what runs; a last boot, not cut, too.
func TestQEMUUpdatePowerCut(t *testing.T) {
	disk := makeDisk(t, 256<<20, "mkfs.ext4", "-q", "-F", "-L", "data")
	versions := map[string]string{"1": fmt.Sprintf(powercutConfig, "1"), "2": fmt.Sprintf(powercutConfig, "2")}
	boot := func(mode string, console *lineClock, kill <-chan struct{}) (string, error) {
		a := appliance{arch: "amd64", config: versions["1"], modules: storageModules,
			files: map[string]string{"demo/powercut-admin.sh": powercutAdmin},
			initrd: map[string]string{"etc/powercut/mode": mode,
				"etc/powercut/v1.toml": versions["1"], "etc/powercut/v2.toml": versions["2"]},
			kill: kill, serial: console, ends: "any", vm: vm.Config{ExtraQEMU: diskArgs(disk)}}
		if kill == nil {
			a.ends = ""
		}
		return bootAppliance(t, a)
	}
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("power cuts: seed %d", seed)
	allowed := []string{"1"} // the versions the next boot may run
	for i := 1; i <= 6; i++ {
		delay := time.Duration(rng.Int64N(int64(3 * time.Second)))
		kill := make(chan struct{})
		var once sync.Once
		cut := func() { once.Do(func() { close(kill) }) }
		console := &lineClock{on: updateBegins, then: func() { time.AfterFunc(delay, cut) }}
		mode := "update"
		if i == 6 {
			mode, kill = "final", nil
		} else {
			time.AfterFunc(3*time.Minute, cut) // should the update never begin
		}
		start := time.Now()
		out, err := boot(mode, console, kill)
		runs := checkRunning(t, i, out, allowed)
		if i == 6 {
			if err != nil {
				t.Errorf("last boot: QEMU did not exit cleanly: %v", err)
			}
			wantLines(t, out, "berth: power off")
		} else if !updateBegins.MatchString(out) {
			t.Fatalf("boot %d: the update never began\n%s", i, out)
		}
		rec, gens := checkGenerations(t, disk, versions)
		allowed = []string{gens[rec.Committed]}
		if rec.Trying != 0 {
			allowed = append(allowed, gens[rec.Trying])
		}
		cutAt := delay.Round(time.Millisecond).String() + " after the update began"
		if kill == nil {
			cutAt = "none"
		}
		t.Logf("boot %d: %s; ran v%s; cut: %s; console: trying %v, committed %v; record %+v; next boot may run v%v",
			i, time.Since(start).Round(time.Millisecond), runs, cutAt,
			strings.Contains(out, "update: trying"), strings.Contains(out, "admin | == apply: 0"), rec, allowed)
		checkStatus(t, i, out, runs, gens)
		if i == 1 && !strings.Contains(out, "admin | == now: generation  1 committed") {
			t.Errorf("boot 1: generation 1 is not the committed one before the update")
		}
		if t.Failed() {
			t.Fatalf("console:\n%s", out)
		}
	}
}

// checkRunning checks that boot i ran one version of svc, one of
// allowed, and returns it.
func checkRunning(t *testing.T, i int, out string, allowed []string) string {
	t.Helper()
	m := svcVersions.FindStringSubmatch(out)
	if m == nil {
		t.Errorf("boot %d: admin never showed svc's versions", i)
		return ""
	}
	v := strings.TrimSpace(m[1])
	if len(v) != 1 || !strings.Contains(strings.Join(allowed, ","), v) {
		t.Errorf("boot %d: svc ran v%q before the update, want one of %v", i, v, allowed)
	}
	return v
}

// checkStatus checks that the committed generation berth status showed
// in boot i is the version that ran.
func checkStatus(t *testing.T, i int, out, runs string, gens map[int]string) {
	t.Helper()
	m := nowLine.FindStringSubmatch(out)
	if m == nil {
		t.Errorf("boot %d: admin never showed a committed generation", i)
		return
	}
	n, _ := strconv.Atoi(m[1])
	if v, ok := gens[n]; ok && v != runs {
		t.Errorf("boot %d: berth status says generation %d (v%s) is committed, but svc runs v%s", i, n, v, runs)
	}
}

// powercutRecord is the part of STATE/generations/current the test reads.
type powercutRecord struct {
	Committed int `json:"committed"`
	Previous  int `json:"previous"`
	Trying    int `json:"trying"`
}

// checkGenerations mounts a copy of the disk on this host and checks the
// generation store: the record parses, every numbered directory is a
// whole generation (its config.toml one of versions, its
// generation.json of its number), and the record names only those. It
// returns the record and each generation's version.
func checkGenerations(t *testing.T, disk string, versions map[string]string) (powercutRecord, map[int]string) {
	t.Helper()
	mnt, unmount := mountDiskCopy(t, disk)
	defer unmount()
	store := filepath.Join(mnt, "berth", "generations")
	var rec powercutRecord
	data, err := os.ReadFile(filepath.Join(store, "current"))
	if err == nil {
		err = json.Unmarshal(data, &rec)
	}
	if err != nil {
		t.Fatalf("the record %q: %v", data, err)
	}
	ents, err := os.ReadDir(store)
	if err != nil {
		t.Fatal(err)
	}
	gens := map[int]string{}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // the record, .new-N and .current-* (removed at the next boot)
		}
		gens[n] = checkGeneration(t, filepath.Join(store, e.Name()), n, versions)
	}
	for _, n := range []int{rec.Committed, rec.Previous, rec.Trying} {
		if _, ok := gens[n]; n != 0 && !ok {
			t.Errorf("the record %s names generation %d, which the disk does not hold (%v)", data, n, gens)
		}
	}
	return rec, gens
}

// checkGeneration checks that dir is generation n, whole, and returns
// its version.
func checkGeneration(t *testing.T, dir string, n int, versions map[string]string) string {
	t.Helper()
	config, err := os.ReadFile(filepath.Join(dir, "config.toml"))
	if err != nil {
		t.Errorf("generation %d: %v", n, err)
	}
	var meta struct {
		Number int `json:"number"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "generation.json"))
	if err == nil {
		err = json.Unmarshal(data, &meta)
	}
	if err != nil || meta.Number != n {
		t.Errorf("generation %d: generation.json %q (%v): not whole", n, data, err)
	}
	for v, c := range versions {
		if string(config) == c {
			return v
		}
	}
	t.Errorf("generation %d: config.toml is neither version's config (%d bytes): not whole", n, len(config))
	return ""
}
