package main

import (
	"bufio"
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// bridgeBench compares start-to-exit of /bin/true with --net bridge and
// with the default net = none, alternating, berth run without wrapper,
// on this host's network namespace. A container holding the bridge runs
// throughout, as on an appliance where PID 1 keeps it: each run measures
// what one container adds (its veth pair, its address and route, its
// registry entry). The cost of a berth run that is the bridge's only
// user — which creates the bridge and the table, and removes them at
// exit — is measured after, separately.
func bridgeBench(berth, rootfs string, n int) error {
	stopHolder, err := startBridgeHolder(berth, rootfs)
	if err != nil {
		return err
	}
	args := func(net string) []string {
		return []string{berth, "run", "--net", net, "--memory", "64M", "--pids", "64", rootfs, "--", "/bin/true"}
	}
	times, traced, err := timeBridge(args, n)
	stopHolder()
	if err != nil {
		return err
	}
	printBridge(times, traced, n)

	// The bridge's only user: it creates and removes the bridge and the
	// table each time.
	var alone []time.Duration
	for i := 0; i < min(n, 10); i++ {
		d, err := timeCmd(args("bridge"))
		if err != nil {
			return fmt.Errorf("net=bridge alone: %w", err)
		}
		alone = append(alone, d)
	}
	fmt.Printf("berth run --net bridge as the bridge's only user (creates and removes berth0 and the table): median %s, %d runs\n\n", ms(median(alone)), len(alone))
	return nil
}

// startBridgeHolder starts the container that holds the bridge and
// returns once it is up, with what stops it.
func startBridgeHolder(berth, rootfs string) (func(), error) {
	holder := exec.Command(berth, "run", "--name", "bench-bridge-holder", "--net", "bridge", rootfs, "--",
		"sh", "-c", "trap 'exit 0' TERM; echo up; while :; do sleep 0.05; done")
	out, err := holder.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := holder.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		holder.Process.Signal(syscall.SIGTERM)
		holder.Wait()
	}
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		stop()
		return nil, fmt.Errorf("bridge holder: %v", err)
	}
	return stop, nil
}

// timeBridge times n runs of each network, alternating (after one run
// each not counted), then takes n breakdowns of each, alternating too.
func timeBridge(args func(net string) []string, n int) (map[string][]time.Duration, map[string]*phases, error) {
	times := map[string][]time.Duration{}
	for i := -1; i < n; i++ {
		for _, net := range []string{"none", "bridge"} {
			d, err := timeCmd(args(net))
			if err != nil {
				return nil, nil, fmt.Errorf("net=%s: %w", net, err)
			}
			if i >= 0 {
				times[net] = append(times[net], d)
			}
		}
	}
	traced := map[string]*phases{"none": newPhases(), "bridge": newPhases()}
	for i := 0; i < n; i++ {
		for _, net := range []string{"none", "bridge"} {
			if err := traced[net].add(args(net)); err != nil {
				return nil, nil, err
			}
		}
	}
	return times, traced, nil
}

// printBridge prints both medians, both breakdowns side by side and the
// bridge's own steps.
func printBridge(times map[string][]time.Duration, traced map[string]*phases, n int) {
	none, bridge := traced["none"], traced["bridge"]
	mn, mb := median(times["none"]), median(times["bridge"])
	fmt.Printf("berth run /bin/true, net = none against net = bridge (another container holds the bridge), %d runs each, alternating:\n", n)
	fmt.Printf("  %-10s %10s %12s\n", "net", "median", "p25-p75")
	for _, net := range []string{"none", "bridge"} {
		ts := times[net]
		fmt.Printf("  %-10s %10s %12s\n", net, ms(median(ts)), ms(pct(ts, 25))+"-"+ms(pct(ts, 75)))
	}
	fmt.Printf("  bridge adds %s (median against median)\n", ms(mb-mn))
	fmt.Println("breakdown, median of each step (net = none | net = bridge | difference):")
	seen := map[string]bool{}
	var sumN, sumB time.Duration
	for _, ph := range append(append([]string{}, bridge.order...), none.order...) {
		if seen[ph] {
			continue
		}
		seen[ph] = true
		a, b := none.median(ph), bridge.median(ph)
		sumN, sumB = sumN+a, sumB+b
		fmt.Printf("  %-28s %8s %8s %9s\n", ph, ms(a), ms(b), ms(b-a))
	}
	fmt.Printf("  %-28s %8s %8s %9s\n", "sum", ms(sumN), ms(sumB), ms(sumB-sumN))
	// What the bridge itself adds, step by step: the registry before the
	// start (main to start, against none's), the veth pair, eth0's
	// address and route in the init, the registry after the exit.
	attach := bridge.median("bridge-attach") + bridge.median("start") - none.median("start")
	veth, up := bridge.median("veth"), bridge.median("net-up")-none.median("net-up")
	detach := bridge.median("bridge-detach")
	fmt.Printf("the bridge's own steps: attach %s + veth pair %s + eth0 up in the container %s + detach %s = %s\n",
		ms(attach), ms(veth), ms(up), ms(detach), ms(attach+veth+up+detach))
}
