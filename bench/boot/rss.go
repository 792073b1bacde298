package main

// berth's RSS as PID 1 with 3 and with 11 containers (-rss).

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"berth/appliance"
	"berth/bench/internal/results"
	"berth/image"
	"berth/internal/busybox"
	"berth/internal/vm"
)

// benchRSS boots berth with 3 and with 11 containers and reads its RSS.
func benchRSS(repo string, m machine, berth, dir string, runs int, rec *results.Set) error {
	rootfs := filepath.Join(dir, "rootfs")
	if err := busybox.Rootfs(repo, m.arch, rootfs, map[string]string{"admin.sh": adminScript}); err != nil {
		return err
	}
	img := filepath.Join(dir, "bb.tar.zst")
	if err := image.Pack(rootfs, img, image.PackOptions{}); err != nil {
		return err
	}
	initrd := func(n int) (string, error) {
		cfg := filepath.Join(dir, fmt.Sprintf("berth-%d.toml", n))
		if err := os.WriteFile(cfg, []byte(config(n)), 0o644); err != nil {
			return "", err
		}
		path := filepath.Join(dir, fmt.Sprintf("berth-%d.cpio.zst", n))
		spec := appliance.Spec{Config: cfg, Arch: m.arch, Berth: berth, Files: map[string]string{"/images/bb.tar.zst": img}}
		return path, vm.Initramfs(spec, m.kernel, path)
	}
	three, err := initrd(2) // 2 sleepers + the admin container: 3 running
	if err != nil {
		return err
	}
	eleven, err := initrd(10) // 10 + admin: 11 running
	if err != nil {
		return err
	}
	var rss3, rss11 []int64
	for r := 0; r < runs; r++ {
		out, err := m.boot(three, "")
		if err != nil {
			return fmt.Errorf("berth with 3 containers: %w\n%s", err, out)
		}
		rss, err := rssFrom(out)
		if err != nil {
			return fmt.Errorf("berth with 3 containers: %w", err)
		}
		rss3 = append(rss3, rss)
		if out, err = m.boot(eleven, ""); err != nil {
			return fmt.Errorf("berth with 11 containers: %w", err)
		}
		if rss, err = rssFrom(out); err != nil {
			return fmt.Errorf("berth with 11 containers: %w", err)
		}
		rss11 = append(rss11, rss)
	}
	m3, m11 := medianInt(rss3), medianInt(rss11)
	fmt.Printf("  berth RSS as PID 1, idle: %d KiB with 3 containers, %d KiB with 11: %d KiB per extra container\n\n",
		m3>>10, m11>>10, (m11-m3)/8>>10)
	rec.Add(m.name+" / berth RSS idle / 3 containers", float64(m3>>10), "KiB")
	rec.Add(m.name+" / berth RSS idle / 11 containers", float64(m11>>10), "KiB")
	rec.Add(m.name+" / berth RSS idle / per extra container", float64((m11-m3)/8>>10), "KiB")
	return nil
}

// config is n sleepers and an admin container that reports berth status.
func config(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "[[container]]\nname = \"sleeper%d\"\nimage = \"/images/bb.tar.zst\"\ncommand = [\"/bin/sh\", \"-c\", \"echo sleeper %d up; exec sleep 1000\"]\nstop_timeout = \"1s\"\n\n", i, i)
	}
	b.WriteString(`[[container]]
name = "admin"
image = "/images/bb.tar.zst"
command = ["/bin/sh", "/admin.sh", "` + strconv.Itoa(n+1) + `"]
` + vm.BerthCLIMounts)
	return b.String()
}

// adminScript waits for every container to run, lets berth idle, prints
// berth status as JSON a line at a time (the console shows at most 512
// bytes of a line) and powers off.
const adminScript = `
while [ "$(berth status --json | grep -c '"running": '"$1")" = 0 ]; do sleep 0.5; done
sleep 3
berth status --json | tr -d ' ' | sed 's/^/STATUS /'
berth poweroff
`

// rssFrom reads berth's RSS from the JSON the admin printed: the pieces
// after "STATUS " on the console's lines, joined.
func rssFrom(out string) (int64, error) {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if _, piece, ok := strings.Cut(strings.TrimRight(line, "\r"), "STATUS "); ok {
			b.WriteString(piece)
		}
	}
	var st struct {
		RSS  int64 `json:"berth_rss_bytes"`
		Anon int64 `json:"berth_rss_anon_bytes"`
		File int64 `json:"berth_rss_file_bytes"`
	}
	if err := json.Unmarshal([]byte(b.String()), &st); err != nil || st.RSS == 0 {
		return 0, fmt.Errorf("berth status --json on the console: %v: %.200s", err, b.String())
	}
	fmt.Printf("    (RSS %d KiB: anonymous %d KiB, file-backed %d KiB)\n", st.RSS>>10, st.Anon>>10, st.File>>10)
	return st.RSS, nil
}

func medianInt(v []int64) int64 {
	s := append([]int64(nil), v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
