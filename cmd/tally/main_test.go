package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tally-loyalty/tally/tallytest"
)

// binary is the tally command built once for these tests, so serve is tested
// as users run it: a process that gets SIGTERM.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tally-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "tally")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build tally: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const adminToken = "cmd-test-token-0123456789"

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// process is a running tally command with its combined output.
type process struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when the process has exited
}

// syncBuffer collects a process's output while the test may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func start(t testing.TB, env []string, args ...string) *process {
	t.Helper()
	return startWithInput(t, env, "", args...)
}

// startWithInput is start with stdin fed from input.
func startWithInput(t testing.TB, env []string, input string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Stdin = strings.NewReader(input)
	cmd.Env = append(os.Environ(), env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *process) wait(t testing.TB, limit time.Duration) (int, string) {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), p.out.String()
	case <-time.After(limit):
		t.Fatalf("tally %v did not exit in %v; output:\n%s", p.cmd.Args[1:], limit, p.out.String())
	}
	return 0, ""
}

func waitHealthy(t testing.TB, addr string, p *process) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("serve did not become healthy; output:\n%s", p.out.String())
}

func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// TestServe_CreatesDatabaseServesAndStopsOnSIGTERM runs serve against a
// database that does not exist yet, awards points through the admin API, and
// stops it with SIGTERM well inside 10 s.
func TestServe_CreatesDatabaseServesAndStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	env := []string{"DATABASE_URL=" + tallytest.EmptyDatabaseURL(t), "REDIS_URL=" + tallytest.Redis(t),
		"TALLY_HTTP_ADDR=" + addr, "TALLY_ADMIN_TOKEN=" + adminToken}
	p := start(t, env, "serve")
	waitHealthy(t, addr, p)
	base := "http://" + addr
	if code, body := call(t, "GET", base+"/readyz", ""); code != 200 || !strings.Contains(body, `"redis":"ok"`) {
		t.Fatalf("readyz: %d %s", code, body)
	}
	if code, body := call(t, "POST", base+"/v1/awards", `{"member":"telegram:42","points":150,"reason":"welcome","idempotency_key":"w-42"}`); code != 201 {
		t.Fatalf("award: %d %s", code, body)
	}
	if code, body := call(t, "GET", base+"/v1/members/telegram:42", ""); code != 200 || !strings.Contains(body, `"available":150`) {
		t.Fatalf("member: %d %s", code, body)
	}
	if code, body := call(t, "GET", base+"/metrics", ""); code != 200 || !strings.Contains(body, `tally_ledger_operations_total{op="award",outcome="ok"} 1`) {
		t.Fatalf("metrics: %d", code)
	}
	sent := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	code, out := p.wait(t, 10*time.Second)
	if code != 0 {
		t.Fatalf("exit %d after SIGTERM; output:\n%s", code, out)
	}
	t.Logf("stopped %v after SIGTERM", time.Since(sent).Round(time.Millisecond))
	for _, want := range []string{"tally serving", "shutting down", "stopped", "platform=telegram"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestServe_TwoInstancesStartingTogether: both create/migrate the same new
// database at once and both come up.
func TestServe_TwoInstancesStartingTogether(t *testing.T) {
	t.Parallel()
	db, redis := tallytest.EmptyDatabaseURL(t), tallytest.Redis(t)
	var procs []*process
	var addrs []string
	for range 2 {
		addr := freeAddr(t)
		addrs = append(addrs, addr)
		procs = append(procs, start(t, []string{"DATABASE_URL=" + db, "REDIS_URL=" + redis, "TALLY_HTTP_ADDR=" + addr}, "serve"))
	}
	for i := range procs {
		waitHealthy(t, addrs[i], procs[i])
	}
	for _, p := range procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		if code, out := p.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
	}
}

func TestServe_RefusesToStartWithoutItsServices(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	cases := map[string]struct {
		env  []string
		want []string
	}{
		"postgres down": {[]string{"DATABASE_URL=postgres://postgres@127.0.0.1:1/tally?sslmode=disable", "REDIS_URL=" + tallytest.RedisURL()},
			[]string{"cannot reach PostgreSQL at postgres://postgres@127.0.0.1:1/tally", "pg_ctlcluster"}},
		"redis down": {[]string{"DATABASE_URL=" + tallytest.DatabaseURL(t), "REDIS_URL=redis://127.0.0.1:1/0"},
			[]string{"cannot reach Redis at redis://127.0.0.1:1/0", "redis-server --daemonize yes"}},
	}
	for name, c := range cases {
		p := start(t, append(c.env, "TALLY_HTTP_ADDR="+addr), "serve")
		code, out := p.wait(t, 30*time.Second)
		if code == 0 || !tallytest.Contains(out, c.want...) {
			t.Errorf("%s: exit %d, output:\n%s\nwant it to name %q", name, code, out, c.want)
		}
	}
}

func TestServe_BadConfigurationNamesTheProblem(t *testing.T) {
	t.Parallel()
	prog := filepath.Join(t.TempDir(), "programme.toml")
	os.WriteFile(prog, []byte("[program]\ntimezone = \"Europe/Berln\"\n"), 0o600)
	cases := map[string]struct {
		env  []string
		want string
	}{
		"programme":   {[]string{"TALLY_PROGRAM=" + prog}, "program.timezone"},
		"missing":     {[]string{"TALLY_PROGRAM=/nonexistent/p.toml"}, "/nonexistent/p.toml"},
		"short token": {[]string{"TALLY_ADMIN_TOKEN=abc"}, "TALLY_ADMIN_TOKEN is too short"},
		"bad addr":    {[]string{"TALLY_HTTP_ADDR=8080"}, "TALLY_HTTP_ADDR"},
	}
	for name, c := range cases {
		p := start(t, c.env, "serve")
		code, out := p.wait(t, 30*time.Second)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("%s: exit %d, output:\n%s\nwant it to name %q", name, code, out, c.want)
		}
	}
}

func TestCheck_ExitsOneOnAViolation(t *testing.T) {
	t.Parallel()
	db := tallytest.DatabaseURL(t)
	env := []string{"DATABASE_URL=" + db}
	p := start(t, env, "check")
	if code, out := p.wait(t, 30*time.Second); code != 0 || !strings.Contains(out, "OK: every ledger invariant holds") {
		t.Fatalf("clean check: exit %d\n%s", code, out)
	}
	conn, err := pgx.Connect(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "INSERT INTO members (balance, created_at) VALUES (5, now())"); err != nil {
		t.Fatal(err)
	}
	p = start(t, env, "check")
	code, out := p.wait(t, 30*time.Second)
	if code != 1 || !strings.Contains(out, "VIOLATION of invariant 3") || !strings.Contains(out, "FAILED") {
		t.Fatalf("check of a broken ledger: exit %d\n%s", code, out)
	}
}

func TestMigrateVersionHelp(t *testing.T) {
	t.Parallel()
	db := tallytest.EmptyDatabaseURL(t)
	p := start(t, []string{"DATABASE_URL=" + db}, "migrate")
	if code, out := p.wait(t, 30*time.Second); code != 0 || !strings.Contains(out, "applied migrations: 0001_ledger.sql") {
		t.Fatalf("migrate: %d %s", code, out)
	}
	p = start(t, []string{"DATABASE_URL=" + db}, "migrate")
	if code, out := p.wait(t, 30*time.Second); code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("second migrate: %d %s", code, out)
	}
	if code, out := start(t, nil, "version").wait(t, 10*time.Second); code != 0 || !strings.HasPrefix(out, "tally ") {
		t.Fatalf("version: %d %s", code, out)
	}
	if code, out := start(t, nil, "frobnicate").wait(t, 10*time.Second); code == 0 || !strings.Contains(out, `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %d %s", code, out)
	}
	if code, out := start(t, nil).wait(t, 10*time.Second); code != 2 || !strings.Contains(out, "tally serve") {
		t.Fatalf("no command: %d %s", code, out)
	}
}

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	p := start(t, []string{"DATABASE_URL=" + tallytest.DatabaseURL(t), "REDIS_URL=" + tallytest.Redis(t), "TALLY_HTTP_ADDR=" + addr}, "serve")
	waitHealthy(t, addr, p)
	if code, out := start(t, []string{"TALLY_HTTP_ADDR=" + addr}, "healthcheck").wait(t, 10*time.Second); code != 0 {
		t.Fatalf("healthcheck of a running serve: %d %s", code, out)
	}
	if code, _ := start(t, []string{"TALLY_HTTP_ADDR=" + freeAddr(t)}, "healthcheck").wait(t, 10*time.Second); code == 0 {
		t.Fatal("healthcheck passed with nothing listening")
	}
}

// TestDemo_ConsoleChatInGerman drives tally demo through its stdin.
func TestDemo_ConsoleChatInGerman(t *testing.T) {
	t.Parallel()
	db := tallytest.EmptyDatabaseURL(t)
	t.Cleanup(func() { // the demo's own database
		if c, err := pgx.Connect(context.Background(), tallytest.ServerURL()); err == nil {
			u, _ := demoDatabase(db)
			name := u[strings.LastIndex(u, "/")+1 : strings.Index(u, "?")]
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	p := startWithInput(t, []string{"DATABASE_URL=" + db, "TALLY_LOG_LEVEL=warn"},
		"/balance\nhistory\n/lang ko\n/balance\n/quit\n", "demo", "--lang", "de")
	code, out := p.wait(t, 30*time.Second)
	if code != 0 {
		t.Fatalf("demo exit %d:\n%s", code, out)
	}
	for _, want := range []string{"Du hast 650 Punkte", "Launch promotion", "_demo"} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "포인트") {
		t.Errorf("no Korean after /lang ko:\n%s", out)
	}
	if code, out := start(t, nil, "demo", "--as", "admin").wait(t, 10*time.Second); code == 0 || !strings.Contains(out, "--as") {
		t.Errorf("demo --as admin: %d %s", code, out)
	}
}
