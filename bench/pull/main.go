// Command pull measures pulling the Debian minbase image from a local
// registry (Debian's docker-registry, plain HTTP, on a free port) and
// unpacking it into tmpfs: `berth pull` of the minbase tree pushed as a
// berth image (`berth image push`: one tar+zstd layer, the berth file
// itself) against `skopeo copy docker://… oci:DIR` + `umoci unpack` of
// the same tree pushed by skopeo as a docker image with one gzip layer,
// and `berth pull` of that gzip image too. Tools alternate within each
// run; it prints medians of wall time, CPU time, peak RSS (ru_maxrss of
// the child; skopeo and umoci are two children, the larger counts), the
// ratio against the target (≤ 0.5×), and the bytes of the blobs each
// pull fetches.
//
// The inputs are bench/unpack's (.cache/bench/artifacts/minbase: the tar
// and its OCI layout with one gzip layer); run it first.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"berth/bench/internal/results"
)

func main() {
	n := flag.Int("n", 5, "timed runs per tool (alternating)")
	berth := flag.String("berth", "out/berth-linux-"+runtime.GOARCH, "berth binary")
	cache := flag.String("cache", ".cache/bench", "bench/unpack's cache (artifacts/minbase)")
	out := results.Flag("pull")
	flag.Parse()
	if err := run(*berth, *cache, *n); err != nil {
		fmt.Fprintln(os.Stderr, "bench pull:", err)
		os.Exit(1)
	}
	out.Save()
}

// tool is one way of pulling and unpacking into dir.
type tool struct {
	name  string
	steps func(dir string) [][]string
}

// result is what the runs of one tool measured.
type result struct {
	times, cpu []time.Duration
	rss        int64 // KiB, the largest of any run and step
}

func run(berth, cache string, n int) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (tmpfs, ownership)")
	}
	for _, t := range []string{"docker-registry", "skopeo", "umoci"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s is missing (make bench-deps installs it)", t)
		}
	}
	berth, _ = filepath.Abs(berth)
	art, _ := filepath.Abs(filepath.Join(cache, "artifacts", "minbase"))
	tarPath, layout := filepath.Join(art, "minbase.tar"), filepath.Join(art, "oci")
	if _, err := os.Stat(filepath.Join(layout, "index.json")); err != nil {
		return fmt.Errorf("%s: no minbase inputs (go run ./bench/unpack -only minbase makes them): %w", art, err)
	}
	tmpfs, unmount, err := mountTmpfs("3g")
	if err != nil {
		return err
	}
	defer unmount()
	host, stop, err := startRegistry(filepath.Join(tmpfs, "registry"))
	if err != nil {
		return err
	}
	defer stop()
	img := filepath.Join(tmpfs, "minbase.berth")
	berthRef, gzipRef := "docker://"+host+"/bench/berth:1", "docker://"+host+"/bench/gzip:1"
	for _, argv := range [][]string{
		{berth, "image", "pack", tarPath, "-o", img},
		{berth, "image", "push", "--insecure", img, berthRef},
		{"skopeo", "copy", "--quiet", "--format", "v2s2", "--dest-tls-verify=false", "oci:" + layout + ":bench", gzipRef},
	} {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	tools := []tool{
		{"berth pull (berth image, zstd)", func(dir string) [][]string {
			return [][]string{{berth, "pull", "--insecure", "--cache", dir, berthRef}}
		}},
		{"skopeo copy + umoci unpack (gzip)", func(dir string) [][]string {
			return [][]string{
				{"skopeo", "copy", "--quiet", "--src-tls-verify=false", gzipRef, "oci:" + dir + "/oci:bench"},
				{"umoci", "unpack", "--image", dir + "/oci:bench", dir + "/bundle"},
			}
		}},
		{"berth pull (docker gzip)", func(dir string) [][]string {
			return [][]string{{berth, "pull", "--insecure", "--cache", dir, gzipRef}}
		}},
	}
	res := make([]result, len(tools))
	for i := range n {
		for k := range tools {
			t := (i + k) % len(tools)
			if err := runOnce(tools[t], filepath.Join(tmpfs, "dest"), &res[t]); err != nil {
				return err
			}
		}
	}
	return report(tools, res, host, n)
}

// runOnce runs a tool's steps into a fresh dir, timing them together.
func runOnce(t tool, dir string, r *result) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var cpu time.Duration
	start := time.Now()
	for _, argv := range t.steps(dir) {
		cmd := exec.Command(argv[0], argv[1:]...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		cpu += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		r.rss = max(r.rss, ru.Maxrss)
	}
	r.times = append(r.times, time.Since(start))
	r.cpu = append(r.cpu, cpu)
	return nil
}

// report prints the medians, the ratio and the bytes each pull fetched.
func report(tools []tool, res []result, host string, n int) error {
	fmt.Printf("pull + unpack of Debian bookworm minbase from docker-registry on %s into tmpfs, median of %d\n", host, n)
	fmt.Printf("  %-36s %10s %10s %12s\n", "", "wall ms", "cpu ms", "peak RSS MiB")
	for i, t := range tools {
		fmt.Printf("  %-36s %10.1f %10.1f %12.1f\n", t.name, ms(median(res[i].times)), ms(median(res[i].cpu)), float64(res[i].rss)/1024)
	}
	ratio := float64(median(res[0].times)) / float64(median(res[1].times))
	fmt.Printf("  ratio berth / (skopeo + umoci) = %.2f× (target ≤ 0.5×)\n", ratio)
	fmt.Printf("  ratio berth gzip / (skopeo + umoci) = %.2f×\n", float64(median(res[2].times))/float64(median(res[1].times)))
	for _, repo := range []string{"bench/berth", "bench/gzip"} {
		b, err := blobBytes(host, repo)
		if err != nil {
			return err
		}
		fmt.Printf("  blobs fetched for %-12s %12d bytes (%.1f MiB)\n", repo, b, float64(b)/(1<<20))
	}
	return nil
}

// blobBytes sums the sizes of an image's config and layers, as its
// manifest gives them: what a pull fetches, less a few KiB of JSON.
func blobBytes(host, repo string) (int64, error) {
	out, err := exec.Command("skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+host+"/"+repo+":1").Output()
	if err != nil {
		return 0, fmt.Errorf("skopeo inspect %s: %w", repo, err)
	}
	var m struct {
		Config struct{ Size int64 }
		Layers []struct{ Size int64 }
	}
	if err := json.Unmarshal(out, &m); err != nil {
		return 0, err
	}
	total := m.Config.Size
	for _, l := range m.Layers {
		total += l.Size
	}
	return total, nil
}

// startRegistry runs docker-registry on a free port of 127.0.0.1 with
// its storage in dir.
func startRegistry(dir string) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	host := l.Addr().String()
	l.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	cfg := filepath.Join(dir, "config.yml")
	yml := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s/storage\nhttp:\n  addr: %s\n", dir, host)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		return "", nil, err
	}
	cmd := exec.Command("docker-registry", "serve", cfg)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait() }
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", host); err == nil {
			c.Close()
			return host, stop, nil
		}
		if i > 200 {
			stop()
			return "", nil, fmt.Errorf("docker-registry did not listen on %s", host)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mountTmpfs mounts a tmpfs of the given size at a new directory.
func mountTmpfs(size string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "berth-bench-pull-")
	if err != nil {
		return "", nil, err
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		os.Remove(dir)
		return "", nil, fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return dir, func() {
		syscall.Unmount(dir, syscall.MNT_DETACH)
		os.Remove(dir)
	}, nil
}

// median of the runs.
func median(v []time.Duration) time.Duration {
	s := append([]time.Duration{}, v...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return d.Seconds() * 1000 }
