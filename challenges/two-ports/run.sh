#!/bin/sh
mkdir -p /tmp/web /tmp/admin
echo '<p>Nothing to see here. Try the admin host.</p>' > /tmp/web/index.html
echo "$FLAG" > /tmp/admin/flag.txt
httpd -p 8081 -h /tmp/admin
exec httpd -f -p 8080 -h /tmp/web
