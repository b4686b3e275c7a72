#!/bin/sh
# healthcheck.sh --connect --innodb_initialized, as the mariadb image's: the server answers and
# InnoDB is up (root over the local socket, no password needed)
out=$(mariadb --protocol=socket -uroot -N -e \
    "SELECT 1 FROM information_schema.ENGINES WHERE ENGINE = 'InnoDB' AND SUPPORT IN ('YES', 'DEFAULT')" 2>/dev/null)
[ "$out" = 1 ]
