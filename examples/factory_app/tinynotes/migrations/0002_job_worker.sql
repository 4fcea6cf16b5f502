-- Which worker took a job, so a stuck job names its process.
ALTER TABLE jobs ADD COLUMN worker TEXT;
CREATE INDEX jobs_by_state ON jobs (state, id);
