-- Background jobs: queued by `flask notes tick` (or anyone), done by `flask notes work`.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    queued TEXT NOT NULL,
    finished TEXT,
    result TEXT
);
