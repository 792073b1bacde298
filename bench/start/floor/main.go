// Command floor is bench/start's baseline for a Go program's own start:
// a static Go binary that does nothing. Its start-to-exit time is what any
// Go runtime pays on this machine before its first line of main, the floor
// under berth run's figure.
package main

func main() {}
