package childproc

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// A child started with Attr dies with its parent. The parent here is a
// copy of this test binary that starts `sleep` and is then killed with
// SIGKILL, as an interrupted test binary would be.
func TestChildDiesWithItsParent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Pdeathsig is Linux only")
	}
	if os.Getenv("CHILDPROC_PARENT") == "1" {
		parent()
		return
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1):", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildDiesWithItsParent$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CHILDPROC_PARENT=1", "CHILDPROC_SLEEP="+sleep)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var buf [32]byte
	n, _ := out.Read(buf[:]) // the parent prints its child's pid once it runs
	pid, err := strconv.Atoi(string(buf[:n]))
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the parent said %q, want a pid", buf[:n])
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for Running(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("child %d still runs 10 s after its parent was killed", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// parent starts a long sleep with Attr, prints its pid and waits to be
// killed.
func parent() {
	c := exec.Command(os.Getenv("CHILDPROC_SLEEP"), "600")
	c.SysProcAttr = Attr()
	if err := c.Start(); err != nil {
		os.Exit(3)
	}
	os.Stdout.WriteString(strconv.Itoa(c.Process.Pid))
	c.Wait()
	os.Exit(0)
}
