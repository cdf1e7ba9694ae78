-- Console sessions (OpenID Connect sign-in): the SHA-256 of the cookie, never the cookie; who
-- signed in, their groups (JSON) and until when (unix ms).
CREATE TABLE console_sessions (
    hash        TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    name        TEXT NOT NULL,
    groups      TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_ms);
-- Sign-ins on their way through the provider, under the SHA-256 of their state: the nonce and
-- PKCE verifier the callback checks against; taken once.
CREATE TABLE console_logins (
    state_hash    TEXT PRIMARY KEY,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to     TEXT NOT NULL,
    expires_ms    INTEGER NOT NULL
);
CREATE INDEX console_logins_expiry ON console_logins (expires_ms);
