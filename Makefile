# Two entry points for people: `make demo` and `make test`. Everything they need is
# installed here, from pinned requirements and Debian packages.
SHELL := /bin/bash
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
COLLECTION_LINK := .collections/ansible_collections/gantry/deploy
export PATH := $(BIN):$(PATH)
export ANSIBLE_FORCE_COLOR ?= 0
export PY_COLORS ?= 0

.PHONY: demo demo-down test lint unit molecule deps host-packages engine images bench-s3 bench-serve bench-deploy sanity collection

## demo: two local Debian hosts (containers with systemd), the sample app deployed on both,
## its database on the first, its assets in a local S3 and its cache rules in a local
## Cloudflare stand-in
demo: deps images
	ansible-playbook playbooks/local_services.yml
	ansible-playbook playbooks/local_hosts.yml
	ansible-playbook -i inventories/local site.yml
	@echo
	@echo "Sample app, through nginx: https://127.0.0.1:18081/ (Debian 12) and https://127.0.0.1:18082/ (Debian 13)"
	@echo "Each host's certificate comes from a CA made on that host; to trust it:"
	@echo "  docker exec gantry-local-1 cat /etc/nginx/gantry/gantry-demo/tls/ca.crt > gantry-local-1-ca.crt"
	@echo "  curl --cacert gantry-local-1-ca.crt https://127.0.0.1:18081/healthz"
	@echo "Its assets, in the local S3 (moto): http://127.0.0.1:18091/gantry-demo"
	@echo "The cache rules, zone settings and purges the Cloudflare stand-in holds: http://127.0.0.1:18092/_standin/state"
	@echo "Orders in the database both hosts share (PostgreSQL on gantry-local-1, migrated by the release phase): https://127.0.0.1:18081/orders/"
	@echo "The worker fulfils them (docker exec gantry-local-1 journalctl -u 'gantry-demo_worker@*'); the report timer logs every 20 s (-u 'gantry-demo_report@*')"
	@echo "The hottest functions of sampled requests: ansible-playbook -i inventories/local playbooks/profile.yml"
	@echo "What the deploy did: .gantry/last-deploy.json"
	@echo "Remove the demo hosts, the local S3 and the stand-in with: make demo-down"

demo-down: deps
	ansible-playbook playbooks/local_hosts_down.yml
	ansible-playbook playbooks/local_services.yml -e local_services_state=stopped

## test: lint, ansible-test sanity, unit tests, then molecule scenarios on Debian 12 and 13
test: lint sanity unit molecule

lint: deps
	yamllint -s .
	ansible-lint --offline --profile production
	ruff check .

unit: deps
	pytest -q -n auto tests

# The log stays in .gantry/molecule.log; a failure is summed up at the end of the output.
molecule: deps images
	tools/failure-digest.sh .gantry/molecule.log molecule test --all

bench-s3: deps
	python bench/s3/run.py

## bench-serve: Gunicorn's defaults, the seed guide's config and Gantry's profiles under wrk
bench-serve: deps
	python bench/serve/run.py

## bench-deploy: first converge, no-change re-run and code-only redeploy on 2 and 4 local hosts
bench-deploy: deps images
	python bench/deploy/run.py

deps: $(VENV)/.installed host-packages $(COLLECTION_LINK)

# This checkout as the collection gantry.deploy (ansible.cfg's collections_path): every
# playbook names our roles and plugins by FQCN, as a project using the installed
# collection does.
$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../.. $@

## sanity: ansible-test sanity on the collection as it ships (tools/sanity.sh)
sanity: deps
	tools/sanity.sh

## collection: gantry-deploy-<version>.tar.gz, for `ansible-galaxy collection install`
collection: deps
	ansible-galaxy collection build --force .

$(VENV)/.installed: requirements.txt examples/flask_demo/requirements.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# wrk: the load generator of the zero-downtime tests and bench-serve (it retries
# nothing, so every lost request shows); curl: the upload proof; debootstrap: the base
# images; chromium and its driver: the browser test (tests/browser_check.py).
HOST_COMMANDS := wrk curl debootstrap chromium chromedriver
HOST_PACKAGES := wrk curl debootstrap chromium chromium-driver
host-packages:
	@(for command in $(HOST_COMMANDS); do command -v $$command >/dev/null || exit 1; done) || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(HOST_PACKAGES) >/dev/null; }

engine:
	tools/ensure-docker.sh

images: engine host-packages
	tools/build-images.sh bookworm trixie
