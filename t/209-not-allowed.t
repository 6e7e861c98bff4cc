# amonitor_status, amonitor_metrics and amonitor_dashboard answer only GET
# and HEAD: any other method gets 405 with "Allow: GET, HEAD", which RFC
# 9110 (15.5.6) requires in a 405 (the panel endpoint already said
# "Allow: GET"). The 405 had no Allow header.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new;

$t->write_config(
    http_config => 'amonitor_zone amon 1m;',
    config => <<'EOC',
        location = /status { amonitor_status; }
        location = /metrics { amonitor_metrics; }
        location /amonitor/ { amonitor_dashboard on; }
        location = /ws/panel { amonitor_panel on; }
EOC
)->run;

for my $path ('/status', '/metrics', '/amonitor/', '/amonitor/app.js') {
    for my $m (qw(POST PUT DELETE OPTIONS PATCH)) {
        my $r = $t->http($m, $path, body => $m =~ /^P/ ? 'x=1' : '');
        is($r->{code}, 405, "$m $path: 405");
        is($r->{headers}{allow}, 'GET, HEAD', "$m $path: Allow: GET, HEAD");
    }
    is($t->http_get($path)->{code}, 200, "GET $path: 200");
    my $h = $t->http('HEAD', $path);
    is($h->{code}, 200, "HEAD $path: 200");
    ok(!exists $h->{headers}{allow}, "HEAD $path: no Allow");
}

my $r = $t->http('POST', '/ws/panel', body => 'x');
is($r->{code}, 405, 'the panel endpoint: 405');
is($r->{headers}{allow}, 'GET', 'with Allow: GET (unchanged)');

done_testing();
