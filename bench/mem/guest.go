package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"berth/appliance"
	"berth/bench/internal/results"
	"berth/boot"
	"berth/internal/vm"
)

// proberScript is web in the guest: with berth's control socket and
// berth itself mounted, it drives the sequence benchHost drives on the
// host and prints berth status --json (berth's memory read by PID 1 from
// /proc/self/status: /proc/1/status) a line at a time, each
// "MEM PHASE RESTARTS SAMPLE PIECE": the console shows at most 512 bytes
// of a container's line.
// Arguments: restarts, samples, settle seconds.
const proberScript = `export BERTH_SOCKET=/run/berth.sock
restarts() { berth ps --json | tr -d ' \n' | grep -o '"name":"memcrash".*' | grep -o '"restarts":[0-9]*' | head -1 | cut -d: -f2; }
running() { berth ps | grep -q '^memcrash  *running'; }
samples() {
	sleep $3
	i=0
	while [ $i -lt $2 ]; do
		r=$(restarts)
		berth status --json | tr -d ' ' | sed "s/^/MEM $1 $r $i /"
		i=$((i+1)); sleep 1
	done
}
until running; do sleep 1; done
samples idle $2 $3
touch /ctl/go
berth restart memcrash >/dev/null
until [ "$(restarts)" -ge $1 ]; do sleep 2; done
rm /ctl/go
# Up once its restarts stop counting.
last=-1
while :; do r=$(restarts); if running && [ "$r" = "$last" ]; then break; fi; last=$r; sleep 2; done
samples after $2 $3
echo "MEM done"
berth poweroff
`

// benchGuest boots the guest (a 64 MB arm board by default) o.guestRuns
// times and reports PID 1's memory there.
func benchGuest(o options, dir string, rec *results.Set) error {
	arch := o.guestArch
	kernel, err := appliance.Kernel(o.repo, arch)
	if err != nil {
		return err
	}
	berth, err := vm.BuildBerth(o.repo, arch, dir)
	if err != nil {
		return err
	}
	img, err := packImage(o.repo, arch, dir, map[string]string{"crash.sh": crashScript, "web.sh": proberScript})
	if err != nil {
		return err
	}
	keep := filepath.Join(dir, "keep")
	if err := os.WriteFile(keep, []byte("the crash container's /ctl\n"), 0o644); err != nil {
		return err
	}
	mounts := vm.BerthCLIMounts + `[[container.mount]]
source = "/mem-ctl"
target = "/ctl"
`
	web := []string{"/bin/sh", "/web.sh", strconv.Itoa(o.guestRestart), strconv.Itoa(o.samples), strconv.Itoa(int(o.settle.Seconds()))}
	cfg := filepath.Join(dir, "guest.toml")
	if err := os.WriteFile(cfg, []byte(config("/images/mem.tar.zst", "/mem-ctl", web, mounts)), 0o644); err != nil {
		return err
	}
	initrd := filepath.Join(dir, "guest.cpio.zst")
	spec := appliance.Spec{Config: cfg, Arch: arch, Berth: berth,
		Files: map[string]string{"/images/mem.tar.zst": img, "/mem-ctl/README": keep}}
	if err := vm.Initramfs(spec, kernel, initrd); err != nil {
		return err
	}
	var idle, after []sample
	var took []time.Duration
	for r := 0; r < o.guestRuns; r++ {
		start := time.Now()
		c := vm.Config{Arch: arch, Kernel: kernel, Initramfs: initrd, MemoryMB: o.guestMem, Append: o.guestAppend, Timeout: time.Hour}
		out, _, err := c.Boot(nil, "")
		if err != nil {
			return fmt.Errorf("boot %d: %w\n%s", r+1, err, tail(out, 40))
		}

		i, a, err := guestSamples(out)
		if err != nil {
			return fmt.Errorf("boot %d: %w\n%s", r+1, err, tail(out, 40))
		}
		idle, after, took = append(idle, i), append(after, a), append(took, time.Since(start))
	}
	fmt.Printf("PID 1's memory in QEMU (%s, TCG, -m %d: a %d MB board), berth as PID 1 with the same two containers; from the guest's /proc/1/status, the largest of %d samples %s after each steady state, %d boots:\n",
		arch, o.guestMem, o.guestMem, o.samples, o.settle, o.guestRuns)
	report(fmt.Sprintf("qemu %s %dM", arch, o.guestMem), fmt.Sprintf("after %d restarts", o.guestRestart), idle, after, rec)
	fmt.Printf("  a boot with %d restarts took %s (median)\n\n", o.guestRestart, medianDur(took).Round(time.Second))
	return nil
}

var memLine = regexp.MustCompile(`MEM (idle|after) (\d+) (\d+) (.*)$`)

// guestSamples keeps the sample with the largest RSS of each phase from
// the guest's console.
func guestSamples(out string) (idle, after sample, err error) {
	if !strings.Contains(out, "MEM done") {
		return idle, after, fmt.Errorf("the guest did not finish its samples")
	}
	// One sample's JSON is the pieces of its lines, in order.
	type key struct{ phase, restarts, n string }
	var keys []key
	pieces := map[key]string{}
	for _, line := range strings.Split(out, "\n") {
		m := memLine.FindStringSubmatch(strings.TrimRight(line, "\r"))
		if m == nil {
			continue
		}
		k := key{m[1], m[2], m[3]}
		if _, ok := pieces[k]; !ok {
			keys = append(keys, k)
		}
		pieces[k] += m[4]
	}
	for _, k := range keys {
		var st boot.Status
		if err := json.Unmarshal([]byte(pieces[k]), &st); err != nil {
			return idle, after, fmt.Errorf("berth status --json: %w: %.200s", err, pieces[k])
		}
		if !st.PID1 {
			return idle, after, fmt.Errorf("berth status in the guest is not PID 1's")
		}
		s := sample{MemoryInfo: st.Memory}
		s.restarts, _ = strconv.Atoi(k.restarts)
		p := &idle
		if k.phase == "after" {
			p = &after
		}
		if s.RSS > p.RSS {
			*p = s
		}
	}
	if idle.RSS == 0 || after.RSS == 0 {
		return idle, after, fmt.Errorf("no memory samples on the console")
	}
	return idle, after, nil
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
