# amonitor_dashboard_root with a relative path is taken from nginx's
# prefix, as "root" is. It was opened relative to the worker's current
# directory (usually "/"): nginx -t passed and every file was 404
# ('open() "custom/index.html" failed' at info). An empty path, which
# would now be the prefix itself, is refused.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new;

# an empty path would be the prefix itself: nginx.conf and the logs
my ($st, $out) = $t->nginx_t(http_config => 'amonitor_zone amon 1m;',
    config => 'location /d/ { amonitor_dashboard on; '
        . 'amonitor_dashboard_root ""; }');
isnt($st, 0, 'an empty amonitor_dashboard_root is refused');
like($out // '',
    qr/\[emerg\] "amonitor_dashboard_root" directive must name a directory in \S+nginx\.conf:\d+/,
    'naming the directive');

$t->write_file('custom/index.html', "<p>custom</p>\n");
$t->write_file('custom/extra.css', "p {}\n");
$t->write_file('html/r.txt', "root\n");
$t->write_config(
    http_config => 'amonitor_zone amon 1m;',
    config => <<'EOC',
        location /rel/ {
            amonitor_dashboard on;
            amonitor_dashboard_root custom;
        }
        location /abs/ {
            amonitor_dashboard on;
            amonitor_dashboard_root %%PREFIX%%/custom;
        }
        location = /r.txt { root html; }
EOC
)->run;

is($t->http_get('/r.txt')->{body}, "root\n",
    'nginx\'s own root takes a relative path from the prefix');

for my $loc ('/rel/', '/abs/') {
    my $r = $t->http_get($loc);
    is($r->{code}, 200, "$loc: the index of the directory");
    is($r->{body}, "<p>custom</p>\n", "$loc: the customised one");
    $r = $t->http_get("${loc}extra.css");
    is($r->{code}, 200, "$loc: its other files");
    is($r->{body}, "p {}\n", "$loc: by name");
}

done_testing();
