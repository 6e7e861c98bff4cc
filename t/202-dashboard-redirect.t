# The dashboard's location asked without its trailing slash is redirected
# to it with its query: "/amonitor?token=...&panel=..." must keep the
# token and the panel endpoint the page reads from its URL (docs/dashboard.md,
# "Where it connects"), as nginx keeps the query of a directory redirect.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new;

$t->write_config(
    http_config => 'amonitor_zone amon 1m;',
    config => <<'EOC',
        location /amonitor { amonitor_dashboard on; }
EOC
)->run;

my $r = $t->http_get('/amonitor?token=s3cret&panel=/monitor/ws');
is($r->{code}, 301, 'the location without its slash is redirected');
like($r->{headers}{location} // '',
    qr{^(?:http://[^/]+)?/amonitor/\?token=s3cret&panel=/monitor/ws$},
    'to the location with its slash, the query kept');

$r = $t->http_get('/amonitor');
like($r->{headers}{location} // '', qr{^(?:http://[^/]+)?/amonitor/$},
    'without a query, none is added');

$r = $t->http_get('/amonitor/?token=s3cret');
is($r->{code}, 200, 'the redirected URL serves the page');
like($r->{body}, qr{<script type="module" src="app.js">}, 'the dashboard');

done_testing();
