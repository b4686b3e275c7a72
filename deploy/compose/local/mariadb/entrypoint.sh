#!/bin/sh
# mariadbd [options]: initialise an empty data directory once (root's password from
# MARIADB_ROOT_PASSWORD_FILE, never printed), then run the server as user mysql.
# Any other command runs as given.
set -eu
case ${1:-} in
    mariadbd | mysqld) shift ;;
    *) exec "$@" ;;
esac
install -d -o mysql -g mysql /run/mysqld
chown mysql:mysql /var/lib/mysql
if [ ! -d /var/lib/mysql/mysql ]; then
    [ -r "${MARIADB_ROOT_PASSWORD_FILE:-}" ] || { echo "entrypoint: MARIADB_ROOT_PASSWORD_FILE is not a readable file" >&2; exit 1; }
    echo "entrypoint: initialising /var/lib/mysql"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db \
        --auth-root-authentication-method=socket >/dev/null
    sock=/run/mysqld/init.sock
    mariadbd --user=mysql --skip-networking --socket=$sock &
    pid=$!
    i=0
    until mariadb-admin --socket=$sock -uroot ping >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -lt 60 ] || { echo "entrypoint: server did not start" >&2; exit 1; }
        sleep 1
    done
    # a quote in the password is doubled for the SQL string
    pw=$(sed -e "s/'/''/g" "$MARIADB_ROOT_PASSWORD_FILE" | tr -d '\r\n')
    mariadb --socket=$sock -uroot <<SQL
CREATE USER 'root'@'%' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('$pw');
SQL
    mariadb-admin --socket=$sock -uroot shutdown
    wait $pid || true
fi
exec mariadbd --user=mysql "$@"
