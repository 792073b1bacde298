package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// execBench times `berth exec NAME -- /bin/true` into a container that
// berth boot supervises against `runc exec ID /bin/true` into a runc
// container of the same rootfs, capabilities, seccomp profile and
// limits (the bundle's config.json, running sleep), alternating with
// the wrapper in one run; both run behind the wrapper, whose median is
// subtracted. Target: berth at most half of runc.
func execBench(berth, rootfs, bundle, work string, n int) error {
	img := filepath.Join(work, "exec.tar.zst")
	if _, err := timeCmd([]string{berth, "image", "pack", rootfs, "-o", img}); err != nil {
		return err
	}
	config := filepath.Join(work, "exec.toml")
	toml := fmt.Sprintf("[[container]]\nname = \"bench\"\nimage = %q\ncommand = [\"sleep\", \"1000000\"]\nstop_timeout = \"1s\"\n"+
		"[container.limits]\nmemory = \"64M\"\npids = 64\n", img)
	if err := os.WriteFile(config, []byte(toml), 0o644); err != nil {
		return err
	}
	sock := filepath.Join(work, "exec.sock")
	boot := exec.Command(berth, "boot", "--config", config, "--state", filepath.Join(work, "exec-state"), "--socket", sock)
	var bootLog strings.Builder
	boot.Stdout, boot.Stderr = &bootLog, &bootLog
	if err := boot.Start(); err != nil {
		return err
	}
	defer func() { exec.Command(berth, "poweroff", "--socket", sock).Run(); boot.Wait() }()
	id := fmt.Sprintf("bench-exec-%d", os.Getpid())
	runBundle, err := sleepBundle(bundle, work)
	if err != nil {
		return err
	}
	// The detached container keeps runc's stdio: a file, not a pipe
	// that would stay open.
	runcOut, err := os.CreateTemp(work, "runc-out-")
	if err != nil {
		return err
	}
	defer runcOut.Close()
	runc := exec.Command(wrapper[0], append(wrapper[1:], "runc", "run", "-d", "-b", runBundle, id)...)
	runc.Stdout, runc.Stderr = runcOut, runcOut
	if err := runc.Run(); err != nil {
		out, _ := os.ReadFile(runcOut.Name())
		return fmt.Errorf("runc run -d: %v: %s", err, out)
	}
	defer exec.Command(wrapper[0], append(wrapper[1:], "runc", "delete", "-f", id)...).Run()
	if err := waitRunning(berth, sock); err != nil {
		return fmt.Errorf("%v\n%s", err, bootLog.String())
	}
	rts := []runtimeCmd{
		{"wrapper", false, func(int) []string { return append(append([]string{}, wrapper...), "/bin/true") }},
		{"berth exec", true, func(int) []string { return []string{berth, "exec", "--socket", sock, "bench", "--", "/bin/true"} }},
		{"runc exec", true, func(int) []string { return []string{"runc", "exec", id, "/bin/true"} }},
	}
	times := map[string][]time.Duration{}
	for i := -1; i < n; i++ {
		for _, rt := range rts {
			args := rt.cmd(i)
			if rt.wrapped {
				args = append(append([]string{}, wrapper...), args...)
			}
			d, err := timeCmd(args)
			if err != nil {
				return fmt.Errorf("%s: %w", rt.name, err)
			}
			if i >= 0 {
				times[rt.name] = append(times[rt.name], d)
			}
		}
	}
	printExec(rts, times, n)
	return nil
}

// printExec prints the exec times: medians, net of the wrapper, and the
// ratio to runc's with the target's verdict.
func printExec(rts []runtimeCmd, times map[string][]time.Duration, n int) {
	wrap := median(times["wrapper"])
	berthNet, runcNet := median(times["berth exec"])-wrap, median(times["runc exec"])-wrap
	fmt.Printf("exec of /bin/true into a running container, %d runs each, alternating (median; p25-p75)\n", n)
	fmt.Printf("%-20s %10s %10s %16s %10s\n", "runtime", "median", "net", "p25-p75", "vs runc")
	for _, rt := range rts {
		ts := times[rt.name]
		m, net, ratio := median(ts), median(ts), "-"
		if rt.wrapped {
			net = m - wrap
			ratio = fmt.Sprintf("%.2fx", float64(net)/float64(runcNet))
		}
		fmt.Printf("%-20s %10s %10s %16s %10s\n", rt.name, ms(m), ms(net), ms(pct(ts, 25))+"-"+ms(pct(ts, 75)), ratio)
	}
	ratio := float64(berthNet) / float64(runcNet)
	verdict := "met"
	if ratio > 0.5 {
		verdict = "NOT met"
	}
	fmt.Printf("  %-44s %7.2fx (target ≤ 0.5x): %s\n\n", "berth exec / runc exec (net)", ratio, verdict)
}

// sleepBundle writes a bundle beside bundle whose config.json is
// bundle's with sleep as the process and bundle's rootfs as the root.
func sleepBundle(bundle, work string) (string, error) {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return "", err
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		return "", err
	}
	cfg["process"].(map[string]any)["args"] = []string{"/bin/sleep", "1000000"}
	cfg["root"].(map[string]any)["path"] = filepath.Join(bundle, "rootfs")
	dir := filepath.Join(work, "exec-bundle")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if data, err = json.MarshalIndent(cfg, "", " "); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644)
}

// waitRunning waits, at most 30 s, for berth boot's container to run.
func waitRunning(berth, sock string) error {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		out, _ := exec.Command(berth, "ps", "--socket", sock).Output()
		if strings.Contains(string(out), "running") {
			return nil
		}
	}
	return fmt.Errorf("berth boot's container did not start within 30s")
}
