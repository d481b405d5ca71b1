// Package tallytest gives every test its own real services: a fresh Postgres
// database cloned from a migrated template, a Redis database of its own, and a
// clock the test controls. Everything a helper creates is removed when the
// test ends.
package tallytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/tally-loyalty/tally/postgres"
)

// ServerURL is the Postgres server tests use: TALLY_TEST_DATABASE_URL, or the
// local server the development and CI machines run.
func ServerURL() string {
	if u := os.Getenv("TALLY_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// RedisURL is the Redis server tests use: TALLY_TEST_REDIS_URL or the local one.
func RedisURL() string {
	if u := os.Getenv("TALLY_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// templateLockKey serializes template creation across test processes (go test
// runs packages in parallel).
const templateLockKey = 0x7a11_7e57

var (
	templateMu   sync.Mutex // guards templateOnce, which a vanished template resets
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// withDatabase returns the server URL with its database replaced by name.
func withDatabase(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

// template makes sure a migrated template database for the current schema
// exists and returns its name. It is kept between runs (it is named after the
// schema's checksum) and templates of older schemas are dropped.
func template(ctx context.Context) (string, error) {
	templateMu.Lock()
	defer templateMu.Unlock()
	templateOnce.Do(func() {
		sum, err := postgres.SchemaChecksum()
		if err != nil {
			templateErr = err
			return
		}
		templateName = "tally_tpl_" + sum
		conn, err := pgx.Connect(ctx, ServerURL())
		if err != nil {
			templateErr = fmt.Errorf("tallytest: connect to %s (is PostgreSQL running? see DESIGN.md, Services): %w", ServerURL(), err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
			templateErr = err
			return
		}
		defer conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", templateLockKey)
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", templateName).Scan(&exists); err != nil {
			templateErr = err
			return
		}
		if exists {
			return
		}
		rows, _ := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'tally\\_tpl\\_%'")
		stale, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			templateErr = err
			return
		}
		// Templates of older schemas are dropped, but never while in use (no
		// FORCE): a run of another checkout may be cloning from its own.
		for _, name := range stale {
			conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize())
		}
		building := templateName + "_build"
		conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{building}.Sanitize()+" WITH (FORCE)")
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{building}.Sanitize()); err != nil {
			templateErr = err
			return
		}
		pool, err := pgxpool.New(ctx, withDatabase(ServerURL(), building))
		if err != nil {
			templateErr = err
			return
		}
		_, err = postgres.Migrate(ctx, pool)
		pool.Close()
		if err != nil {
			templateErr = err
			return
		}
		// Renamed only when complete, so a crash never leaves a half-built template.
		_, templateErr = conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{building}.Sanitize()+" RENAME TO "+pgx.Identifier{templateName}.Sanitize())
	})
	return templateName, templateErr
}

// DatabaseURL creates a fresh, migrated database for the test and returns its
// URL. The database is dropped when the test ends.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	tpl, err := template(ctx)
	if err != nil {
		t.Fatalf("tallytest: template database: %v", err)
	}
	name := "tally_test_" + randomHex(6)
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		t.Fatalf("tallytest: connect: %v", err)
	}
	defer conn.Close(ctx)
	for attempt := 1; ; attempt++ {
		_, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{tpl}.Sanitize())
		if err == nil {
			break
		}
		// A test run of another checkout, with another schema, dropped this
		// template as stale between its check and our clone: build it again.
		var pgErr *pgconn.PgError
		if attempt < 3 && errors.As(err, &pgErr) && pgErr.Code == "3D000" {
			templateMu.Lock()
			templateOnce = sync.Once{}
			templateMu.Unlock()
			if tpl, err = template(ctx); err != nil {
				t.Fatalf("tallytest: template database: %v", err)
			}
			continue
		}
		t.Fatalf("tallytest: create database: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), ServerURL())
		if err != nil {
			t.Errorf("tallytest: drop database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("tallytest: drop database %s: %v", name, err)
		}
	})
	return withDatabase(ServerURL(), name)
}

// DB returns a pool on a fresh, migrated database of the test's own.
func DB(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), DatabaseURL(t))
	if err != nil {
		t.Fatalf("tallytest: open database: %v", err)
	}
	t.Cleanup(pool.Close) // runs before the drop registered earlier
	return pool
}

// EmptyDatabaseURL returns the URL of a database that does not exist yet (for
// tests of database creation); it is dropped, if created, when the test ends.
func EmptyDatabaseURL(t testing.TB) string {
	t.Helper()
	name := "tally_test_" + randomHex(6)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), ServerURL())
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	return withDatabase(ServerURL(), name)
}

// Redis returns the URL of a Redis database (1 to 15) that no other test holds
// until this one ends; it is flushed before use and after.
func Redis(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	opt, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("tallytest: REDIS url: %v", err)
	}
	opt.DB = 0
	admin := redis.NewClient(opt)
	defer admin.Close()
	owner := randomHex(8)
	deadline := time.Now().Add(60 * time.Second)
	for {
		for db := 1; db <= 15; db++ {
			lock := fmt.Sprintf("tallytest:redis-db:%d", db)
			ok, err := admin.SetNX(ctx, lock, owner, 10*time.Minute).Result()
			if err != nil {
				t.Fatalf("tallytest: Redis at %s (is it running? see DESIGN.md, Services): %v", RedisURL(), err)
			}
			if !ok {
				continue
			}
			o := *opt
			o.DB = db
			c := redis.NewClient(&o)
			c.FlushDB(ctx)
			c.Close()
			t.Cleanup(func() {
				c := redis.NewClient(&o)
				c.FlushDB(context.Background())
				c.Close()
				a := redis.NewClient(opt)
				defer a.Close()
				if a.Get(context.Background(), lock).Val() == owner {
					a.Del(context.Background(), lock)
				}
			})
			u, _ := url.Parse(RedisURL())
			u.Path = fmt.Sprintf("/%d", db)
			return u.String()
		}
		if time.Now().After(deadline) {
			t.Fatal("tallytest: no free Redis database in 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Clock is a clock the test sets and advances. It is safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock that reads t until moved.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// Ptr returns a pointer to v (for optional fields in test requests).
func Ptr[T any](v T) *T { return &v }

// Contains reports whether s contains every one of subs (for error messages).
func Contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// Notifier records the work a service hands to the queue (the tasks
// service's Notifier) without running it, so a test runs the jobs itself.
type Notifier struct {
	mu       sync.Mutex
	pays     []int64
	messages []int64
}

// PayClaim records a claim handed on for payment.
func (n *Notifier) PayClaim(_ context.Context, id int64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pays = append(n.pays, id)
	return nil
}

// Send records a message handed on for sending.
func (n *Notifier) Send(_ context.Context, id int64) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.messages = append(n.messages, id)
	return nil
}

// Pays returns the claims handed on for payment, in order.
func (n *Notifier) Pays() []int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]int64(nil), n.pays...)
}

// Messages returns the messages handed on for sending, in order.
func (n *Notifier) Messages() []int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]int64(nil), n.messages...)
}
