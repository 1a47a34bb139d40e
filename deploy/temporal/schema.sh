#!/bin/sh
# Temporal's schema on PostgreSQL, set up by temporalio/admin-tools before the server starts
# (deploy/compose.production.yml, service temporal-schema). Safe at every start: a database
# that has a schema is brought up to the versions this admin-tools image ships (which is how
# a newer server's schema changes arrive: keep both images on one Temporal version), and a
# missing one is created and set up from scratch.
# temporal-sql-tool reads its connection from SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER and
# SQL_PASSWORD.
set -eu

SCHEMAS=/etc/temporal/schema/postgresql/v12

# The store of workflow histories, then the one the UI and `rollout list` search.
for pair in temporal:temporal temporal_visibility:visibility; do
    database=${pair%%:*}
    versions=$SCHEMAS/${pair##*:}/versioned
    if temporal-sql-tool --database "$database" update-schema --schema-dir "$versions"; then
        echo "$database: schema up to date"
        continue
    fi
    echo "$database: no schema yet, setting it up"
    temporal-sql-tool --database "$database" create-database
    temporal-sql-tool --database "$database" setup-schema --version 0.0
    temporal-sql-tool --database "$database" update-schema --schema-dir "$versions"
done
