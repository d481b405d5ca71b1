package main

import (
	"fmt"
	"net"
	"os"
)

// config is every environment variable Tally reads, with its default
// (DESIGN.md, Environment).
type config struct {
	DatabaseURL string
	RedisURL    string
	HTTPAddr    string
	ProgramPath string
	AdminToken  string
	// Chat platforms: started by later parts of Tally when their token is set.
	TelegramToken         string
	TelegramAPIURL        string
	TelegramWebhookSecret string
	DiscordToken          string
	DiscordAppID          string
	DiscordPublicKey      string
	DiscordAPIURL         string
	DiscordGatewayURL     string
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// loadConfig reads the environment and checks what can be checked early.
func loadConfig() (config, error) {
	c := config{
		DatabaseURL:           env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tally?sslmode=disable"),
		RedisURL:              env("REDIS_URL", "redis://127.0.0.1:6379/0"),
		HTTPAddr:              env("TALLY_HTTP_ADDR", "127.0.0.1:8080"),
		ProgramPath:           env("TALLY_PROGRAM", ""),
		AdminToken:            env("TALLY_ADMIN_TOKEN", ""),
		TelegramToken:         env("TELEGRAM_BOT_TOKEN", ""),
		TelegramAPIURL:        env("TELEGRAM_API_URL", "https://api.telegram.org"),
		TelegramWebhookSecret: env("TELEGRAM_WEBHOOK_SECRET", ""),
		DiscordToken:          env("DISCORD_BOT_TOKEN", ""),
		DiscordAppID:          env("DISCORD_APP_ID", ""),
		DiscordPublicKey:      env("DISCORD_PUBLIC_KEY", ""),
		DiscordAPIURL:         env("DISCORD_API_URL", ""),
		DiscordGatewayURL:     env("DISCORD_GATEWAY_URL", ""),
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return c, fmt.Errorf("TALLY_HTTP_ADDR %q: want host:port, e.g. 127.0.0.1:8080", c.HTTPAddr)
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		return c, fmt.Errorf("TALLY_ADMIN_TOKEN is too short: use at least 16 characters (e.g. openssl rand -hex 32)")
	}
	return c, nil
}
