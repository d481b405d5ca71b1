// Command tally runs the Tally loyalty service: see "tally help".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // programme timezones work on machines without zoneinfo (distroless images)

	"github.com/hibiken/asynqmon"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/tally-loyalty/tally"
	"github.com/tally-loyalty/tally/api"
	"github.com/tally-loyalty/tally/bench"
	"github.com/tally-loyalty/tally/bot"
	"github.com/tally-loyalty/tally/ledger"
	"github.com/tally-loyalty/tally/locales"
	"github.com/tally-loyalty/tally/metrics"
	"github.com/tally-loyalty/tally/postgres"
	"github.com/tally-loyalty/tally/program"
	"github.com/tally-loyalty/tally/queue"
	"github.com/tally-loyalty/tally/tasks"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `tally runs a loyalty-points programme inside chat communities.

Usage:
  tally serve        run the HTTP server, queue worker and scheduler (migrates first)
  tally demo         chat with the bot in this terminal (--as moderator, --lang de)
  tally migrate      create the database if needed and apply migrations
  tally check        verify every ledger invariant; exit 1 on any violation
  tally bench        measure the ledger against pgbench on the same Postgres
  tally healthcheck  exit 0 when the local server answers /healthz (for containers)
  tally version      print the version

Configuration comes from the environment; see README.md.
`

// Serve stops within 10 s of SIGTERM: httpDrain for requests in flight plus
// jobDrain (queue.Config.ShutdownTimeout) for running jobs, with room to spare.
const (
	httpDrain = 4 * time.Second
	jobDrain  = 4 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel()}))
	if err := run(ctx, os.Args[1:], os.Stdout, log); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(int(ee)) // the command said why already
		}
		fmt.Fprintln(os.Stderr, "tally:", err)
		os.Exit(1)
	}
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(env("TALLY_LOG_LEVEL", "info"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// exitError is an exit status with its message already printed.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func run(ctx context.Context, args []string, out io.Writer, log *slog.Logger) error {
	if len(args) == 0 {
		fmt.Fprint(out, usage)
		return exitError(2)
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "version", "--version":
		fmt.Fprintln(out, "tally", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(out, usage)
		return nil
	case "healthcheck":
		return healthcheck(ctx)
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	switch cmd {
	case "serve":
		return serve(ctx, cfg, log)
	case "migrate":
		pool, err := openDB(ctx, cfg, out)
		if err != nil {
			return err
		}
		pool.Close()
		return nil
	case "check":
		return check(ctx, cfg, out)
	case "bench":
		return runBench(ctx, cfg, args, out)
	case "demo":
		return demo(ctx, cfg, args, os.Stdin, out, log)
	}
	fmt.Fprint(out, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// openDB connects, creating the database when missing, and migrates.
func openDB(ctx context.Context, cfg config, out io.Writer) (*pgxpool.Pool, error) {
	pool, err := postgres.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	applied, err := postgres.Migrate(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if len(applied) > 0 {
		fmt.Fprintf(out, "applied migrations: %s\n", strings.Join(applied, ", "))
	} else {
		fmt.Fprintln(out, "database is up to date")
	}
	return pool, nil
}

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	prog, err := program.Load(cfg.ProgramPath)
	if err != nil {
		return err
	}
	pool, err := openDB(ctx, cfg, io.Discard)
	if err != nil {
		return err
	}
	defer pool.Close()
	q, err := queue.New(ctx, cfg.RedisURL, queue.Config{Location: prog.Location, ShutdownTimeout: jobDrain}, log)
	if err != nil {
		return err
	}
	m := metrics.New()
	policy := ledger.ExpiryPolicy{Policy: prog.Expiry.Policy, Months: prog.Expiry.After.Months, Fixed: prog.Expiry.After.Fixed,
		Location: prog.Location}
	l := ledger.New(pool, tally.SystemClock{}, ledger.WithObserver(m.ObserveLedger), ledger.WithExpiry(policy.Expires))
	if err := l.SetExpiryPolicy(ctx, policy); err != nil {
		q.Close()
		return err
	}
	catalog, err := locales.Load()
	if err != nil {
		q.Close()
		return err
	}
	router := bot.NewRouter(l, catalog, prog, log)
	taskSvc := tasks.New(pool, l, prog, tally.SystemClock{}, log)
	taskSvc.SetRanker(tasks.NewRedisRanker(pool, q.Redis(), "tally:board:"))
	router.UseTasks(taskSvc)
	if prog.Seasons != nil {
		season, err := taskSvc.EnsureSeason(ctx)
		if err != nil {
			q.Close()
			return fmt.Errorf("open a season: %w", err)
		}
		// Build the season's Redis board now rather than on the first read.
		go func() {
			if _, err := taskSvc.Leaderboard(ctx, season, 1, 0); err != nil {
				log.Warn("leaderboard not warmed", "err", err)
			}
		}()
	}
	if prog.TelegramReviewChat == "" && prog.DiscordReviewChannel == "" {
		for _, t := range prog.Tasks {
			if t.Approval == program.ApprovalManual {
				log.Warn("manual tasks need a review chat: set moderation.telegram_review_chat or moderation.discord_review_channel; until then their claims wait unseen",
					"task", t.Key)
			}
		}
	}
	apiOpts := []api.Option{
		api.WithAdminToken(cfg.AdminToken),
		api.WithAudit(taskSvc),
		api.WithSeasons(taskSvc),
		api.WithTimezone(prog.Location),
		// The queue's web UI, behind the admin token (a browser asks for it
		// as a password).
		api.WithHandler("/queues/", asynqmon.New(asynqmon.Options{RootPath: "/queues", RedisConnOpt: q.RedisConnOpt()}), true),
		api.WithLogger(log),
		api.WithMetrics(m.Handler(), m.Middleware),
		api.WithReadiness(
			api.Check{Name: "postgres", Ping: pool.Ping},
			api.Check{Name: "redis", Ping: q.Ping},
		),
	}
	chats, chatOpts, err := startChats(ctx, cfg, router, l, pool, log)
	if err != nil {
		q.Close()
		return err
	}
	if _, err := queue.RegisterJobs(q, taskSvc, chats.senders, router); err != nil {
		chats.close()
		q.Close()
		return err
	}
	srv := api.New(l, append(apiOpts, chatOpts...)...)
	lis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		q.Close()
		return fmt.Errorf("listen on TALLY_HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
	}
	if err := q.Start(); err != nil {
		lis.Close()
		q.Close()
		return err
	}
	httpSrv := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	log.Info("tally serving", "version", version, "addr", lis.Addr().String(), "programme", prog.Name,
		"programme_source", prog.Source, "admin_api", cfg.AdminToken != "", "database", postgres.Redact(cfg.DatabaseURL))
	g, gctx := errgroup.WithContext(ctx)
	for _, run := range chats.runs {
		g.Go(func() error { run(gctx); return nil })
	}
	g.Go(func() error {
		if err := httpSrv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down")
		// Within the 10 s budget: up to 4 s for requests in flight (then their
		// connections are cut), then chats, then up to 4 s for running jobs
		// (unfinished ones go back to the queue and run again later).
		sctx, cancel := context.WithTimeout(context.Background(), httpDrain)
		defer cancel()
		if err := httpSrv.Shutdown(sctx); err != nil {
			log.Warn("requests still running after the drain time; closing their connections", "drain", httpDrain)
			httpSrv.Close()
		}
		chats.close()
		q.Shutdown()
		return nil
	})
	err = g.Wait()
	log.Info("stopped")
	return err
}

func check(ctx context.Context, cfg config, out io.Writer) error {
	pool, err := openDB(ctx, cfg, io.Discard)
	if err != nil {
		return err
	}
	defer pool.Close()
	r, err := ledger.New(pool, tally.SystemClock{}).Check(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "members %d, transactions %d, postings %d, lots %d\n", r.Members, r.Transactions, r.Postings, r.Lots)
	fmt.Fprintf(out, "points held by members: %d\n", r.Outstanding)
	for _, a := range ledger.SystemAccounts {
		fmt.Fprintf(out, "system account %-12s %d\n", a+":", r.System[a])
	}
	if r.OK() {
		fmt.Fprintln(out, "OK: every ledger invariant holds")
		return nil
	}
	for _, v := range r.Violations {
		fmt.Fprintf(out, "VIOLATION of invariant %d: %s\n", v.Invariant, v.Detail)
	}
	fmt.Fprintf(out, "FAILED: %d violations\n", len(r.Violations))
	return exitError(1)
}

// healthcheck asks the local server for /healthz (the container health check;
// distroless images have no curl).
func healthcheck(ctx context.Context) error {
	addr := env("TALLY_HTTP_ADDR", "127.0.0.1:8080")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("TALLY_HTTP_ADDR %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: /healthz answered %s", resp.Status)
	}
	return nil
}

func runBench(ctx context.Context, cfg config, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(out)
	duration := fs.Duration("duration", 10*time.Second, "how long each measured phase runs")
	clients := fs.Int("clients", 8, "concurrent clients for pgbench and the award workers")
	members := fs.Int("members", 10000, "distinct members the awards go to")
	expiryLots := fs.Int("expiry-lots", 0, "due lots to load and expire, and members to remind, while awards run (1000000 for the targets; 0 skips it)")
	seasonMembers := fs.Int("season-members", 0, "members to load into a season for the leaderboard and close benchmark (1000000 for the target; 0 skips it)")
	skipServe := fs.Bool("skip-serve", false, "do not measure the RSS of an idle serve")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	opt := bench.Options{ServerURL: cfg.DatabaseURL, RedisURL: cfg.RedisURL, Duration: *duration, Clients: *clients, Members: *members,
		SeasonMembers: *seasonMembers, ExpiryLots: *expiryLots}
	if !*skipServe {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		opt.Binary = exe
	}
	return bench.Run(ctx, opt, out)
}
