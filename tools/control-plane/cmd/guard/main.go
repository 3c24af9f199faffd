// Command guard runs one server as its child and makes sure it does not outlive the process
// that started the guard.
//
//	guard [-cleanup DIR] BINARY [ARGS...]
//
// The child gets the guard's stdout and stderr, and an empty stdin. The guard stops the child
// when:
//   - a line "stop" arrives on its stdin (SIGTERM to the child, SIGKILL after 10 s);
//   - its stdin reaches end of file: the parent exited, even by SIGKILL or a panic (SIGKILL
//     to the child at once, since nobody waits for a graceful stop, and then -cleanup);
//   - it receives SIGTERM or SIGINT (forwarded to the child as SIGTERM);
//   - it is killed itself (the child has SIGKILL as its parent-death signal).
//
// With -cleanup, the guard removes DIR (the server's state) once the child has exited after
// its stdin reached end of file; a "stop" keeps DIR, for a restart on the same data.
// The guard exits with the child's exit code. burst-testkit starts etcd and kube-apiserver
// through it, so that a test binary that ends leaves no server behind.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

const killAfter = 10 * time.Second

func main() {
	args := os.Args[1:]
	cleanup := ""
	if len(args) >= 2 && args[0] == "-cleanup" {
		cleanup = args[1]
		args = args[2:]
	}
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "usage: guard [-cleanup DIR] BINARY [ARGS...]")
		os.Exit(2)
	}
	os.Exit(run(args, cleanup))
}

func run(args []string, cleanup string) int {
	parentGone := false
	defer func() {
		if parentGone && cleanup != "" {
			_ = os.RemoveAll(cleanup)
		}
	}()
	// The parent-death signal fires when the thread that started the child exits, so the
	// child is started from the main goroutine locked to its thread, which lives as long as
	// the process.
	runtime.LockOSThread()

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "guard: cannot start %s: %v\n", args[0], err)
		return 127
	}

	stop := make(chan string, 2)
	go func() {
		lines := bufio.NewScanner(os.Stdin)
		for lines.Scan() {
			if strings.TrimSpace(lines.Text()) == "stop" {
				stop <- "stop"
				return
			}
		}
		stop <- "eof"
	}()
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-signals
		stop <- s.String()
	}()

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var err error
	select {
	case err = <-done:
	case why := <-stop:
		parentGone = why == "eof"
		if parentGone {
			_ = cmd.Process.Kill()
		} else {
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case err = <-done:
		case <-time.After(killAfter):
			_ = cmd.Process.Kill()
			err = <-done
		}
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		if exit.ExitCode() >= 0 {
			return exit.ExitCode()
		}
		return 1
	default:
		fmt.Fprintf(os.Stderr, "guard: %v\n", err)
		return 1
	}
}
