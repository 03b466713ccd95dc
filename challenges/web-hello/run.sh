#!/bin/sh
# The root filesystem is read-only; /tmp is the instance's small tmpfs.
mkdir -p /tmp/www
printf '<h1>%s</h1>\n<p>Your flag: %s</p>\n' "$GREETING" "$FLAG" > /tmp/www/index.html
exec httpd -f -p 8080 -h /tmp/www
