package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tally-loyalty/tally/tallytest"
)

// fakeServeEnv makes the test binary act as `tally serve` when it is started
// as one, so the RSS and shutdown measurement is tested without the real
// server, which is written elsewhere.
const fakeServeEnv = "BENCH_FAKE_SERVE"

func TestMain(m *testing.M) {
	switch os.Getenv(fakeServeEnv) {
	case "":
		os.Exit(m.Run())
	case "crash":
		fmt.Fprintln(os.Stderr, "fake serve: cannot start")
		os.Exit(2)
	default:
		os.Exit(fakeServe())
	}
}

// fakeServe answers /healthz with 200 only when started with the contract's
// arguments and environment, and exits cleanly on SIGTERM.
func fakeServe() int {
	ok := slices.Equal(os.Args[1:], []string{"serve"}) &&
		os.Getenv("DATABASE_URL") != "" && os.Getenv("REDIS_URL") != ""
	if _, set := os.LookupEnv("TALLY_ADMIN_TOKEN"); set {
		ok = false
	}
	srv := &http.Server{Addr: os.Getenv("TALLY_HTTP_ADDR"), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && ok {
			return
		}
		http.Error(w, "not as the contract says", http.StatusInternalServerError)
	})}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestParsePgbenchTPS(t *testing.T) {
	tests := []struct {
		name   string
		output string
		want   float64
		ok     bool
	}{
		{"pgbench 14 and later", `pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: <builtin: simple update>
number of transactions actually processed: 12345
latency average = 6.480 ms
initial connection time = 12.345 ms
tps = 1234.567890 (without initial connection time)
`, 1234.56789, true},
		{"pgbench 13 and earlier takes the excluding line", `number of clients: 8
latency average = 6.480 ms
tps = 1229.000000 (including connections establishing)
tps = 1234.500000 (excluding connections establishing)
`, 1234.5, true},
		{"whole number", "tps = 812 (without initial connection time)\n", 812, true},
		{"garbage", "pgbench: error: connection to server failed\n", 0, false},
		{"empty", "", 0, false},
		{"only the including line", "tps = 1229.0 (including connections establishing)\n", 0, false},
		{"not a number", "tps = abc (without initial connection time)\n", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePgbenchTPS(tt.output)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if got != tt.want {
				t.Errorf("tps = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPgbenchConn_PasswordGoesToTheEnvironmentNotTheFlags(t *testing.T) {
	args, env, err := pgbenchConn("postgres://bench:s3cret@db.example:6543/postgres?sslmode=require")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"-h", "db.example", "-p", "6543", "-U", "bench"}; !slices.Equal(args, want) {
		t.Errorf("args = %q, want %q", args, want)
	}
	if want := []string{"PGPASSWORD=s3cret", "PGSSLMODE=require"}; !slices.Equal(env, want) {
		t.Errorf("env = %q, want %q", env, want)
	}
}

func TestLoadQuantiles_AreNearestRank(t *testing.T) {
	var l load
	for i := 1; i <= 100; i++ {
		l.lat = append(l.lat, time.Duration(i)*time.Millisecond)
	}
	if got := l.p(0.50); got != 50*time.Millisecond {
		t.Errorf("p50 = %s, want 50ms", got)
	}
	if got := l.p(0.99); got != 99*time.Millisecond {
		t.Errorf("p99 = %s, want 99ms", got)
	}
	if got := (load{lat: l.lat[:1]}).p(0.99); got != time.Millisecond {
		t.Errorf("p99 of one = %s, want 1ms", got)
	}
}

func TestRun_MeasuresEveryPhaseAndDropsItsDatabases(t *testing.T) {
	if _, err := exec.LookPath("pgbench"); err != nil {
		t.Fatalf("pgbench is needed (it ships with the PostgreSQL client): %v", err)
	}
	db := "tally_bench_test_" + strings.ToLower(rand.Text()[:10])
	var out bytes.Buffer
	err := Run(context.Background(), Options{
		ServerURL: tallytest.ServerURL(), RedisURL: tallytest.Redis(t),
		Duration: time.Second, Clients: 2, Members: 200, PgbenchScale: 1, Database: db, SeasonMembers: 3000, ExpiryLots: 2000,
	}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"pgbench reference", "pgbench: ", " tps",
		"single awards", "awards/s", "p99",
		"batch awards", "batches/s",
		"ledger check", "Check: OK",
		"task claims", "claims at 100/s: ", "claims/s end to end",
		"season scoring", "scoring costs", "season board", "reads of top 10 + own rank", "prizes paid once: yes",
		"expired 2000 lots", "reminders for 2000 members",
		"idle serve RSS: skipped",
		"Summary", "ledger batch of 1000",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}

	conn, err := pgx.Connect(context.Background(), tallytest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var left []string
	rows, _ := conn.Query(context.Background(), "SELECT datname FROM pg_database WHERE datname IN ($1, $2)", db, db+"_pgbench")
	left, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("databases left behind: %v", left)
	}
}

func TestMeasureServe_ReadsRSSAndTimesShutdown(t *testing.T) {
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	// The race detector sleeps 1 s at exit unless told not to; that is not
	// the shutdown being measured.
	base := append(os.Environ(), fakeServeEnv+"=1", "TALLY_ADMIN_TOKEN=must-not-reach-the-server", "GORACE=atexit_sleep_ms=0")
	env := serveEnv(base, "postgres://example/db", "redis://example/0", addr)
	var out bytes.Buffer
	res, err := measureServe(context.Background(), os.Args[0], env, addr, &printer{w: &out})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.rssKB <= 0 {
		t.Errorf("RSS = %d kB, want a positive size", res.rssKB)
	}
	if res.killed || res.shutdown > TargetShutdown || res.exit != "exit status 0" {
		t.Errorf("shutdown: %+v, want a clean exit well within %s", res, TargetShutdown)
	}
	if !strings.Contains(out.String(), "idle RSS") || !strings.Contains(out.String(), "after SIGTERM") {
		t.Errorf("output lacks the RSS or shutdown line")
	}
}

func TestMeasureServe_ReportsWhyTheServerDidNotStart(t *testing.T) {
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	env := serveEnv(append(os.Environ(), fakeServeEnv+"=crash"), "postgres://example/db", "redis://example/0", addr)
	_, err = measureServe(context.Background(), os.Args[0], env, addr, &printer{w: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "fake serve: cannot start") {
		t.Fatalf("err = %v, want one quoting the server's output", err)
	}
}
