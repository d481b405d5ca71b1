// Package bench measures the ledger against what its Postgres server sustains
// on a plain write workload (pgbench), so the numbers mean the same on a laptop
// and on a production host, and measures the idle footprint and shutdown time
// of `tally serve`. It prints each result next to its target from DESIGN.md.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/postgres"
	"github.com/tally-loyalty/tally/tasks"
)

// Targets from DESIGN.md. Throughput is a ratio to the pgbench reference on
// the same server, so a target means the same on any machine.
const (
	// TargetAwardRatio is the least single awards/s per pgbench transaction/s.
	TargetAwardRatio = 0.8
	// TargetBatchRatio is the least batched awards/s per pgbench transaction/s.
	TargetBatchRatio = 10.0
	// TargetIdleRSSMB is the most resident memory, in MB, of an idle `tally serve`.
	TargetIdleRSSMB = 64.0
	// TargetShutdown is the longest `tally serve` may take to exit after SIGTERM.
	TargetShutdown = 10 * time.Second
)

const (
	batchSize       = ledger.MaxBatch
	maxBatchClients = 4
	healthTimeout   = 20 * time.Second
	// settleTime lets the server finish its start-up work (pools, workers,
	// first GC) so the RSS read is the steady idle footprint.
	settleTime = 3 * time.Second
	killAfter  = 15 * time.Second
)

// Options says where and how hard to measure. Zero fields take the defaults
// given with each.
type Options struct {
	// ServerURL is a Postgres URL whose database part is replaced by the
	// bench's own databases, e.g.
	// "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".
	ServerURL string
	// RedisURL is handed to `tally serve` for the idle RSS measurement;
	// required when Binary is set.
	RedisURL string
	// Duration is how long each measured phase runs; default 10s.
	Duration time.Duration
	// Clients is the number of concurrent clients; default 8.
	Clients int
	// Members is how many distinct members the awards go to; default 10000.
	Members int
	// Binary is the tally binary whose `serve` is measured idle; "" skips
	// that phase.
	Binary string
	// PgbenchScale is the pgbench scale factor (-s); default 10.
	PgbenchScale int
	// ExpiryLots, when above 0, loads that many due lots (10 per member) and
	// expires them, then finds and records reminders for that many members,
	// both while awards run (1,000,000 for the targets).
	ExpiryLots int
	// SeasonMembers, when above 0, loads that many members into a season by
	// batch awards and measures the leaderboard through the admin API and
	// the season's close (1,000,000 for the target; only when asked).
	SeasonMembers int
	// Database names the ledger's bench database; default "tally_bench". The
	// pgbench reference uses the same name with "_pgbench" appended. Tests set
	// it so they never drop a database a real run is using.
	Database string
}

func (o Options) withDefaults() (Options, error) {
	if o.ServerURL == "" {
		return o, errors.New("bench: ServerURL is required")
	}
	// Databases are created and dropped from the server's maintenance database:
	// the one ServerURL names (tally, say) may not exist yet.
	admin, err := withDatabase(o.ServerURL, "postgres")
	if err != nil {
		return o, err
	}
	o.ServerURL = admin
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
	if o.Clients <= 0 {
		o.Clients = 8
	}
	if o.Members <= 0 {
		o.Members = 10000
	}
	if o.PgbenchScale <= 0 {
		o.PgbenchScale = 10
	}
	if o.Database == "" {
		o.Database = "tally_bench"
	}
	if o.Binary != "" && o.RedisURL == "" {
		return o, errors.New("bench: RedisURL is required to start tally serve")
	}
	if o.Members < o.Clients {
		return o, fmt.Errorf("bench: %d members cannot be split among %d clients", o.Members, o.Clients)
	}
	return o, nil
}

// Run measures, in order on one Postgres server: the pgbench reference, single
// awards, batch awards, the ledger check after the load, and the idle RSS and
// shutdown time of `tally serve`. It prints progress and a summary to out. A
// missed target is reported as MISSED in the output, not as an error; Run
// fails only when a phase cannot run or the ledger check finds a violation.
func Run(ctx context.Context, opt Options, out io.Writer) (err error) {
	opt, err = opt.withDefaults()
	if err != nil {
		return err
	}
	p := &printer{w: out}
	pgbenchDB := opt.Database + "_pgbench"

	p.phase("pgbench reference", "TPC-B-like writes without branch/teller updates (-N), scale %d, %d clients, %s",
		opt.PgbenchScale, opt.Clients, opt.Duration)
	tps, err := runPgbench(ctx, opt, pgbenchDB, p)
	if err != nil {
		return err
	}
	p.say("pgbench: %.0f tps", tps)

	benchURL, err := withDatabase(opt.ServerURL, opt.Database)
	if err != nil {
		return err
	}
	dropped := false
	drop := func() error {
		dropped = true
		// The caller's context may be what ended the run.
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return dropDatabase(dctx, opt.ServerURL, opt.Database)
	}
	defer func() {
		if !dropped {
			err = errors.Join(err, drop())
		}
	}()

	p.phase("single awards", "creating database %s and %d members (untimed)", opt.Database, opt.Members)
	svc, closePool, ids, err := prepareLedger(ctx, opt, benchURL)
	if err != nil {
		return err
	}
	defer closePool()
	p.say("single awards: %d clients, 1 point each to its own %d members, unique keys, %s",
		opt.Clients, opt.Members/opt.Clients, opt.Duration)
	single, err := singleAwards(ctx, svc, ids, opt, "single")
	if err != nil {
		return err
	}
	singleRatio := single.rate() / tps
	p.say("single awards: %d in %s: %.0f awards/s, p50 %s, p99 %s; %.3f× pgbench (target ≥ %.1f×) %s",
		single.items, round(single.elapsed), single.rate(), round(single.p(0.50)), round(single.p(0.99)),
		singleRatio, TargetAwardRatio, verdict(singleRatio >= TargetAwardRatio))

	bc := min(opt.Clients, maxBatchClients)
	p.phase("batch awards", "%d clients, batches of %d awards over each client's own %d members, %s",
		bc, batchSize, opt.Members/bc, opt.Duration)
	batch, err := batchAwards(ctx, svc, ids, bc, opt.Duration, "batch")
	if err != nil {
		return err
	}
	batchRatio := batch.rate() / tps
	p.say("batch awards: %d batches (%d awards) in %s: %.0f awards/s, %.1f batches/s, p50 %s, p99 %s; %.1f× pgbench (target ≥ %.0f×) %s",
		batch.ops, batch.items, round(batch.elapsed), batch.rate(), float64(batch.ops)/batch.elapsed.Seconds(),
		round(batch.p(0.50)), round(batch.p(0.99)), batchRatio, TargetBatchRatio, verdict(batchRatio >= TargetBatchRatio))

	p.phase("ledger check", "verifying every invariant over %s", opt.Database)
	if err := check(ctx, svc, p); err != nil {
		return err
	}
	closePool()

	p.phase("season scoring", "awards with no season open, then with one every member is in")
	scoring, err := scoringPhase(ctx, opt, benchURL, ids, p)
	if err != nil {
		return err
	}

	var claims *claimsResult
	if opt.RedisURL == "" {
		p.phase("task claims", "skipped: no Redis given")
	} else {
		p.phase("task claims", "auto-approved claims through chat, the asynq queue on %s and the ledger", redactRedis(opt.RedisURL))
		r, err := claimsPhase(ctx, opt, benchURL, p)
		if err != nil {
			return err
		}
		claims = &r
		p.say("claims at %d/s: %d claims; accepted → points visible p50 %s, p99 %s, max %s (target p99 ≤ %s) %s",
			ClaimRate, r.paced, round(r.p(0.50)), round(r.p(0.99)), round(r.p(1)), TargetClaimLatency, verdict(r.p(0.99) <= TargetClaimLatency))
		p.say("claims flat out: %d claims accepted in %s (%.0f/s), all paid after %s: %.0f claims/s end to end",
			r.sustained, round(r.sustainedAccept), float64(r.sustained)/r.sustainedAccept.Seconds(), round(r.endToEnd),
			float64(r.sustained)/r.endToEnd.Seconds())
	}

	var board *boardResult
	switch {
	case opt.SeasonMembers <= 0:
		p.phase("season board", "skipped: give -season-members (1000000 for the target) to load a season")
	case opt.RedisURL == "":
		p.phase("season board", "skipped: no Redis given")
	default:
		p.phase("season board", "%d members loaded into the season by batch awards; top 10 plus own rank through the admin API; close", opt.SeasonMembers)
		r, err := boardPhase(ctx, opt, benchURL, p)
		if err != nil {
			return err
		}
		board = &r
		p.say("loaded in %s; %d reads of top 10 + own rank: p50 %s, p99 %s (target ≤ %s) %s", round(r.load), r.reads.ops,
			round(r.reads.p(0.50)), round(r.reads.p(0.99)), TargetBoardRead, verdict(r.reads.p(0.99) <= TargetBoardRead))
		p.say("close (standings frozen, next season opened, prizes paid): %s (target ≤ %s) %s; prizes paid once: %s",
			round(r.close), TargetClose, verdict(r.close <= TargetClose), yesNo(r.prizesOK))
		if !r.prizesOK {
			return fmt.Errorf("season board: the prizes were not all paid")
		}
	}

	var expiry *expiryResult
	if opt.ExpiryLots <= 0 {
		p.phase("expiry", "skipped: give -expiry-lots (1000000 for the targets) to load due lots")
	} else {
		p.phase("expiry", "%d due lots expired and reminders found for %d members, while awards run", opt.ExpiryLots, opt.ExpiryLots)
		r, err := expiryPhase(ctx, opt, benchURL, ids, p)
		if err != nil {
			return err
		}
		expiry = &r
		p.say("expired %d lots (%d points of %d loaded) in %s (target ≤ %s) %s; awards meanwhile %.0f/s against %.0f/s idle (%.0f%%, target ≥ %.0f%%) %s",
			r.lots, r.expiredPoints, r.loaded, round(r.expire), TargetExpire, verdict(r.expire <= TargetExpire && r.expiredPoints == r.loaded),
			r.awardsExpire, r.idleExpire.mean(), 100*r.awardsExpire/r.idleExpire.mean(), 100*TargetAwardSlowdown, verdict(r.awardsExpire >= TargetAwardSlowdown*r.idleExpire.mean()))
		p.say("reminders for %d members found and recorded in %s (target ≤ %s) %s; awards meanwhile %.0f/s against %.0f/s idle before and %.0f/s after (%.0f%% of their mean) %s",
			r.queued, round(r.reminders), TargetReminders, verdict(r.reminders <= TargetReminders && r.queued == r.lots),
			r.awardsRemind, r.idleRemind.before, r.idleRemind.after, 100*r.awardsRemind/r.idleRemind.mean(), verdict(r.awardsRemind >= TargetAwardSlowdown*r.idleRemind.mean()))
		p.say("the first %d of them handed on as messages in %s (a window; the rest follow as the platforms take them)",
			r.handed, round(r.dispatch))
		if r.expiredPoints != r.loaded || r.queued != r.lots || r.handed != min(r.lots, tasks.ReminderWindow) {
			return fmt.Errorf("expiry: expired %d of %d points, %d of %d reminders, %d handed on", r.expiredPoints, r.loaded, r.queued, r.lots, r.handed)
		}
	}

	var serve *serveResult
	if opt.Binary == "" {
		p.phase("idle serve RSS", "skipped: no tally binary given")
	} else {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		p.phase("idle serve RSS", "starting %s serve on %s", opt.Binary, addr)
		env := serveEnv(os.Environ(), benchURL, opt.RedisURL, addr)
		r, err := measureServe(ctx, opt.Binary, env, addr, p)
		if err != nil {
			return err
		}
		serve = &r
	}
	if err := drop(); err != nil {
		return err
	}
	p.say("dropped database %s", opt.Database)

	p.summary(tps, single, singleRatio, batch, batchRatio, scoring, claims, board, expiry, serve)
	return nil
}

// printer writes progress lines. Write errors are ignored: output is for a
// person watching, and a closed terminal should not abort the measurement.
// Loaders report progress from several goroutines: lines are written whole.
type printer struct {
	mu sync.Mutex
	w  io.Writer
	n  int
}

func (p *printer) phase(name, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	fmt.Fprintf(p.w, "== %d. %s: %s\n", p.n, name, fmt.Sprintf(format, args...))
}

func (p *printer) say(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "   "+format+"\n", args...)
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}

func yesNo(met bool) string {
	if met {
		return "yes"
	}
	return "MISSED"
}

// round keeps durations readable without hiding sub-millisecond latencies.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// withDatabase returns raw with its database replaced by name.
func withDatabase(raw, name string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("bench: server URL: %w", err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

// dropDatabase drops name on the server, disconnecting whoever still uses it.
func dropDatabase(ctx context.Context, serverURL, name string) error {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

func createDatabase(ctx context.Context, serverURL, name string) error {
	if err := dropDatabase(ctx, serverURL, name); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// tpsLine matches the figure that leaves out connection set-up: pgbench 14
// and later print only that one; older versions print an "including" line
// too, which must not be taken.
var tpsLine = regexp.MustCompile(`(?m)^tps = ([0-9]+(?:\.[0-9]*)?) \((?:without initial connection time|excluding connections establishing)\)`)

// ParsePgbenchTPS returns the transactions per second pgbench reported,
// excluding connection set-up, from its full output.
func ParsePgbenchTPS(output string) (float64, error) {
	m := tpsLine.FindStringSubmatch(output)
	if m == nil {
		return 0, errors.New("no \"tps = N (without initial connection time)\" line in pgbench output")
	}
	tps, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("pgbench tps %q: %w", m[1], err)
	}
	return tps, nil
}

// pgbenchConn turns a server URL into pgbench's connection flags and the
// environment for what flags cannot carry (a password must not show in ps).
func pgbenchConn(serverURL string) (args, env []string, err error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, nil, fmt.Errorf("bench: server URL: %w", err)
	}
	if h := u.Hostname(); h != "" {
		args = append(args, "-h", h)
	}
	if port := u.Port(); port != "" {
		args = append(args, "-p", port)
	}
	if u.User != nil {
		if name := u.User.Username(); name != "" {
			args = append(args, "-U", name)
		}
		if pw, ok := u.User.Password(); ok {
			env = append(env, "PGPASSWORD="+pw)
		}
	}
	if mode := u.Query().Get("sslmode"); mode != "" {
		env = append(env, "PGSSLMODE="+mode)
	}
	return args, env, nil
}

// runPgbench measures the reference on a database of its own, dropped after.
func runPgbench(ctx context.Context, opt Options, db string, p *printer) (tps float64, err error) {
	conn, env, err := pgbenchConn(opt.ServerURL)
	if err != nil {
		return 0, err
	}
	if err := createDatabase(ctx, opt.ServerURL, db); err != nil {
		return 0, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if derr := dropDatabase(dctx, opt.ServerURL, db); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	pgbench := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "pgbench", append(append(conn, args...), db)...)
		cmd.Env = append(os.Environ(), env...)
		b, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("pgbench %s: %w\n%s", strings.Join(args, " "), err, tail(b, 2000))
		}
		return string(b), nil
	}

	start := time.Now()
	p.say("pgbench: initialising %s at scale %d", db, opt.PgbenchScale)
	if _, err := pgbench("-i", "-q", "-s", strconv.Itoa(opt.PgbenchScale)); err != nil {
		return 0, err
	}
	// -T takes whole seconds; rounding up keeps the reference at least as long
	// as the ledger phases it is compared with.
	secs := max(1, int(math.Ceil(opt.Duration.Seconds())))
	p.say("pgbench: initialised in %s; running -N for %d s", round(time.Since(start)), secs)
	// pgbench refuses more threads than clients.
	threads := min(2, opt.Clients)
	outp, err := pgbench("-N", "-c", strconv.Itoa(opt.Clients), "-j", strconv.Itoa(threads), "-T", strconv.Itoa(secs), "-n")
	if err != nil {
		return 0, err
	}
	tps, err = ParsePgbenchTPS(outp)
	if err != nil {
		return 0, fmt.Errorf("%w\n%s", err, tail([]byte(outp), 2000))
	}
	if tps <= 0 {
		return 0, fmt.Errorf("pgbench reported %v tps: no reference to compare with\n%s", tps, tail([]byte(outp), 2000))
	}
	return tps, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// prepareLedger creates the bench database and its members, and returns a
// ledger on it with the member ids in creation order.
func prepareLedger(ctx context.Context, opt Options, benchURL string) (*ledger.Service, func(), []int64, error) {
	if err := dropDatabase(ctx, opt.ServerURL, opt.Database); err != nil {
		return nil, nil, nil, err
	}
	if err := postgres.EnsureDatabase(ctx, benchURL); err != nil {
		return nil, nil, nil, err
	}
	cfg, err := pgxpool.ParseConfig(benchURL)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("bench database URL: %w", err)
	}
	// pgxpool's default of max(4, cores) connections would queue the clients
	// inside the pool and measure the pool rather than the ledger.
	cfg.MaxConns = int32(opt.Clients + 2)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connect to %s: %w", postgres.Redact(benchURL), err)
	}
	var once sync.Once
	closePool := func() { once.Do(pool.Close) }
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		closePool()
		return nil, nil, nil, err
	}
	svc := ledger.New(pool, tally.SystemClock{})
	ids := make([]int64, 0, opt.Members)
	for from := 0; from < opt.Members; from += batchSize {
		n := min(batchSize, opt.Members-from)
		awards := make([]ledger.Award, n)
		for i := range awards {
			awards[i] = ledger.Award{
				Member: ledger.MemberRef{Platform: "console", UserID: strconv.Itoa(from + i + 1)},
				Points: 1, Reason: "bench seed", Key: fmt.Sprintf("seed-%d", from+i),
			}
		}
		res, err := svc.AwardBatch(ctx, awards)
		if err == nil {
			err = batchErr(res)
		}
		if err != nil {
			closePool()
			return nil, nil, nil, fmt.Errorf("create members: %w", err)
		}
		for _, r := range res {
			ids = append(ids, r.Result.MemberID)
		}
	}
	return svc, closePool, ids, nil
}

// batchErr returns the first item error of a batch, and treats a replay as an
// error too: every key the bench sends is new.
func batchErr(res []ledger.BatchResult) error {
	for i, r := range res {
		if r.Err != nil {
			return fmt.Errorf("item %d: %w", i, r.Err)
		}
		if r.Result.Replayed {
			return fmt.Errorf("item %d: replayed although its key is new", i)
		}
	}
	return nil
}

// load is what one measured phase did.
type load struct {
	ops     int // calls: awards, or batches
	items   int // awards
	elapsed time.Duration
	lat     []time.Duration // per call, sorted
}

func (l load) rate() float64 { return float64(l.items) / l.elapsed.Seconds() }

// p returns the q-quantile latency by nearest rank.
func (l load) p(q float64) time.Duration {
	if len(l.lat) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(l.lat)))) - 1
	return l.lat[min(max(i, 0), len(l.lat)-1)]
}

// drive runs op on workers goroutines until d has passed, each calling it with
// its worker number and a sequence number of its own. Calls in flight at the
// deadline finish and count. The first error stops every worker.
func drive(ctx context.Context, workers int, d time.Duration, perOp int, op func(ctx context.Context, w, seq int) error) (load, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		lat      = make([][]time.Duration, workers)
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; time.Now().Before(deadline) && ctx.Err() == nil; seq++ {
				t := time.Now()
				if err := op(ctx, w, seq); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
				lat[w] = append(lat[w], time.Since(t))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return load{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return load{}, err
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	return load{ops: len(all), items: len(all) * perOp, elapsed: elapsed, lat: all}, nil
}

// singleAwards gives client w the members whose index is w modulo Clients, so
// no two clients ever wait on the same member row.
func singleAwards(ctx context.Context, svc *ledger.Service, ids []int64, opt Options, prefix string) (load, error) {
	c := opt.Clients
	return drive(ctx, c, opt.Duration, 1, func(ctx context.Context, w, seq int) error {
		own := (len(ids) - w + c - 1) / c // members w, w+c, w+2c, …
		id := ids[w+(seq%own)*c]
		_, err := svc.Award(ctx, ledger.Award{
			Member: ledger.MemberRef{ID: id}, Points: 1, Reason: "bench",
			Key: fmt.Sprintf("%s-%d-%d", prefix, w, seq),
		})
		if err != nil {
			return fmt.Errorf("award to member %d: %w", id, err)
		}
		return nil
	})
}

// batchAwards gives each client a contiguous range of members and sends
// batches that walk round-robin through it.
func batchAwards(ctx context.Context, svc *ledger.Service, ids []int64, clients int, d time.Duration, prefix string) (load, error) {
	return drive(ctx, clients, d, batchSize, func(ctx context.Context, w, seq int) error {
		own := ids[w*len(ids)/clients : (w+1)*len(ids)/clients]
		awards := make([]ledger.Award, batchSize)
		for i := range awards {
			n := seq*batchSize + i
			awards[i] = ledger.Award{
				Member: ledger.MemberRef{ID: own[n%len(own)]}, Points: 1, Reason: "bench batch",
				Key: fmt.Sprintf("%s-%d-%d", prefix, w, n),
			}
		}
		res, err := svc.AwardBatch(ctx, awards)
		if err == nil {
			err = batchErr(res)
		}
		if err != nil {
			return fmt.Errorf("award batch: %w", err)
		}
		return nil
	})
}

func check(ctx context.Context, svc *ledger.Service, p *printer) error {
	start := time.Now()
	r, err := svc.Check(ctx)
	if err != nil {
		return err
	}
	if !r.OK() {
		p.say("Check: FAILED, %d violations", len(r.Violations))
		for _, v := range r.Violations {
			p.say("  invariant %d: %s", v.Invariant, v.Detail)
		}
		return fmt.Errorf("ledger check found %d violations after the load", len(r.Violations))
	}
	p.say("Check: OK in %s (%d members, %d transactions, %d postings, %d lots, %d points outstanding)",
		round(time.Since(start)), r.Members, r.Transactions, r.Postings, r.Lots, r.Outstanding)
	return nil
}

// freeAddr picks a loopback port nobody listens on. Another process could take
// it before the server binds it; on a bench machine that is unlikely enough.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a port: %w", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr, nil
}

// serveEnv is base with the server's settings replaced. The admin token is
// left out because an idle server needs none.
func serveEnv(base []string, dbURL, redisURL, addr string) []string {
	env := make([]string, 0, len(base)+3)
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "DATABASE_URL", "REDIS_URL", "TALLY_HTTP_ADDR", "TALLY_ADMIN_TOKEN":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "DATABASE_URL="+dbURL, "REDIS_URL="+redisURL, "TALLY_HTTP_ADDR="+addr)
}

// serveResult is what measureServe saw.
type serveResult struct {
	rssKB    int64
	shutdown time.Duration
	killed   bool   // it ignored SIGTERM and was killed
	exit     string // how it ended: "exit status 0", "signal: terminated", …
}

func (r serveResult) rssMB() float64 { return float64(r.rssKB) / 1024 }

// measureServe starts `binary serve` with env, waits for it to answer on
// /healthz and settle, reads its resident set, then stops it with SIGTERM and
// times the exit.
func measureServe(ctx context.Context, binary string, env []string, addr string, p *printer) (res serveResult, err error) {
	var logs bytes.Buffer // one writer for both streams: exec serializes its writes
	cmd := exec.Command(binary, "serve")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("start %s serve: %w", binary, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	// On failure the server must not outlive the bench, and its log says why.
	defer func() {
		if err == nil {
			return
		}
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
		err = fmt.Errorf("%w\nserver output:\n%s", err, tail(logs.Bytes(), 4000))
	}()

	start := time.Now()
	if err := waitHealthy(ctx, "http://"+addr+"/healthz", exited); err != nil {
		return res, err
	}
	p.say("serve: /healthz answered 200 after %s; letting it settle for %s", round(time.Since(start)), settleTime)
	select {
	case <-time.After(settleTime):
	case <-exited:
		return res, fmt.Errorf("serve exited while idle: %v", waitErr)
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.rssKB, err = readRSS(cmd.Process.Pid)
	if err != nil {
		return res, err
	}
	p.say("serve: idle RSS %.1f MB (target ≤ %.0f MB) %s", res.rssMB(), TargetIdleRSSMB, verdict(res.rssMB() <= TargetIdleRSSMB))

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return res, fmt.Errorf("send SIGTERM: %w", err)
	}
	stop := time.Now()
	select {
	case <-exited:
	case <-time.After(killAfter):
		res.killed = true
		cmd.Process.Kill()
		<-exited
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.shutdown = time.Since(stop)
	res.exit = "exit status 0"
	if waitErr != nil {
		res.exit = waitErr.Error()
	}
	how := res.exit
	if res.killed {
		how = fmt.Sprintf("still running after %s, killed", killAfter)
	}
	p.say("serve: stopped %s after SIGTERM (%s; target ≤ %s) %s", round(res.shutdown), how, TargetShutdown,
		verdict(!res.killed && res.shutdown <= TargetShutdown))
	return res, nil
}

func waitHealthy(ctx context.Context, u string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.After(healthTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-tick.C:
		case <-exited:
			return errors.New("serve exited before /healthz answered 200")
		case <-deadline:
			return fmt.Errorf("serve: %s did not answer 200 within %s", u, healthTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// readRSS returns the resident set of a process in kB, as Linux reports it.
func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read RSS: %q: %w", v, err)
			}
			return kb, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read RSS: %w", err)
	}
	return 0, fmt.Errorf("read RSS: no VmRSS line for process %d", pid)
}

func (p *printer) summary(tps float64, single load, singleRatio float64, batch load, batchRatio float64, scoring scoringResult,
	claims *claimsResult, board *boardResult, expiry *expiryResult, serve *serveResult) {
	fmt.Fprintln(p.w, "\nSummary")
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\trate\tvs pgbench\ttarget\tmet")
	fmt.Fprintf(tw, "pgbench -N (reference)\t%.0f tps\t1.00×\t-\t-\n", tps)
	fmt.Fprintf(tw, "ledger award\t%.0f awards/s\t%.3f×\t≥ %.1f×\t%s\n", single.rate(), singleRatio, TargetAwardRatio, yesNo(singleRatio >= TargetAwardRatio))
	fmt.Fprintf(tw, "ledger batch of %d\t%.0f awards/s\t%.1f×\t≥ %.0f×\t%s\n", batchSize, batch.rate(), batchRatio, TargetBatchRatio, yesNo(batchRatio >= TargetBatchRatio))
	fmt.Fprintf(tw, "ledger check\tOK\t-\tno violations\tyes\n")
	fmt.Fprintf(tw, "season scoring cost, single\t%.1f%%\t-\t≤ %.0f%%\t%s\n", 100*scoring.singleCost(), 100*TargetScoringCost, yesNo(scoring.singleCost() <= TargetScoringCost))
	fmt.Fprintf(tw, "season scoring cost, batch\t%.1f%%\t-\t≤ %.0f%%\t%s\n", 100*scoring.batchCost(), 100*TargetScoringCost, yesNo(scoring.batchCost() <= TargetScoringCost))
	if board == nil {
		fmt.Fprintf(tw, "leaderboard read (p99)\tskipped\t-\t≤ %s\t-\n", TargetBoardRead)
		fmt.Fprintf(tw, "season close\tskipped\t-\t≤ %s\t-\n", TargetClose)
	} else {
		fmt.Fprintf(tw, "leaderboard read (p99, %d members)\t%s\t-\t≤ %s\t%s\n", board.members, round(board.reads.p(0.99)), TargetBoardRead, yesNo(board.reads.p(0.99) <= TargetBoardRead))
		fmt.Fprintf(tw, "season close (%d members)\t%s\t-\t≤ %s\t%s\n", board.members, round(board.close), TargetClose, yesNo(board.close <= TargetClose))
	}
	if expiry == nil {
		fmt.Fprintf(tw, "expiry sweep\tskipped\t-\t≤ %s\t-\n", TargetExpire)
		fmt.Fprintf(tw, "expiry reminders\tskipped\t-\t≤ %s\t-\n", TargetReminders)
	} else {
		fmt.Fprintf(tw, "expiry sweep (%d lots)\t%s\t-\t≤ %s\t%s\n", expiry.lots, round(expiry.expire), TargetExpire, yesNo(expiry.expire <= TargetExpire))
		fmt.Fprintf(tw, "  awards during it\t%.0f%% of idle\t-\t≥ %.0f%%\t%s\n", 100*expiry.awardsExpire/expiry.idleExpire.mean(), 100*TargetAwardSlowdown,
			yesNo(expiry.awardsExpire >= TargetAwardSlowdown*expiry.idleExpire.mean()))
		fmt.Fprintf(tw, "expiry reminders (%d members)\t%s\t-\t≤ %s\t%s\n", expiry.lots, round(expiry.reminders), TargetReminders, yesNo(expiry.reminders <= TargetReminders))
		fmt.Fprintf(tw, "  awards during it\t%.0f%% of idle\t-\t≥ %.0f%%\t%s\n", 100*expiry.awardsRemind/expiry.idleRemind.mean(), 100*TargetAwardSlowdown,
			yesNo(expiry.awardsRemind >= TargetAwardSlowdown*expiry.idleRemind.mean()))
	}
	if claims == nil {
		fmt.Fprintf(tw, "claim → points (p99 at %d/s)\tskipped\t-\t≤ %s\t-\n", ClaimRate, TargetClaimLatency)
	} else {
		fmt.Fprintf(tw, "claim → points (p99 at %d/s)\t%s\t-\t≤ %s\t%s\n", ClaimRate, round(claims.p(0.99)), TargetClaimLatency, yesNo(claims.p(0.99) <= TargetClaimLatency))
		fmt.Fprintf(tw, "claims end to end\t%.0f claims/s\t%.3f×\t-\t-\n", float64(claims.sustained)/claims.endToEnd.Seconds(),
			float64(claims.sustained)/claims.endToEnd.Seconds()/tps)
	}
	if serve == nil {
		fmt.Fprintf(tw, "idle serve RSS\tskipped\t-\t≤ %.0f MB\t-\n", TargetIdleRSSMB)
		fmt.Fprintf(tw, "serve shutdown\tskipped\t-\t≤ %s\t-\n", TargetShutdown)
	} else {
		fmt.Fprintf(tw, "idle serve RSS\t%.1f MB\t-\t≤ %.0f MB\t%s\n", serve.rssMB(), TargetIdleRSSMB, yesNo(serve.rssMB() <= TargetIdleRSSMB))
		fmt.Fprintf(tw, "serve shutdown\t%s\t-\t≤ %s\t%s\n", round(serve.shutdown), TargetShutdown, yesNo(!serve.killed && serve.shutdown <= TargetShutdown))
	}
	tw.Flush()
}

// redactRedis hides a Redis URL's password.
func redactRedis(u string) string {
	if parsed, err := url.Parse(u); err == nil {
		return parsed.Redacted()
	}
	return "(unparsable URL)"
}

// openPool connects to a bench database with room for conns connections (the
// default of max(4, cores) would queue the clients inside the pool).
func openPool(ctx context.Context, url string, conns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("bench database URL: %w", err)
	}
	cfg.MaxConns = int32(conns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", postgres.Redact(url), err)
	}
	return pool, nil
}
