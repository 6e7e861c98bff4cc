# amonitor_dashboard serves the files built into the module, by plain
# name only, with their media types and security headers;
# amonitor_dashboard_root serves a customised copy from a directory.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;

my $t = Test::AMonitor->new;

my ($st, $out) = $t->nginx_t(http_config => 'amonitor_zone amon 1m;',
    config => 'location /d/ { amonitor_dashboard maybe; }');
isnt($st, 0, 'a value other than on/off is refused');
like($out // '', qr/invalid value "maybe" in "amonitor_dashboard" directive, it must be "on" or "off"/,
    'with the exact message');

$t->write_file('custom/index.html', "<p>custom</p>\n");
$t->write_file('custom/logo.svg', "<svg/>\n");
$t->write_config(
    http_config => 'amonitor_zone amon 1m;',
    config => <<'EOC',
        location /amonitor/ { amonitor_dashboard on; }
        location /dash { amonitor_dashboard on; }
        location /custom/ {
            amonitor_dashboard on;
            amonitor_dashboard_root %%PREFIX%%/custom;
        }
EOC
)->run;

my $r = $t->http_get('/amonitor/');
is($r->{code}, 200, 'the location itself is index.html');
like($r->{headers}{'content-type'}, qr{^text/html}, 'as HTML');
like($r->{body}, qr{<script type="module" src="app.js">}, 'the dashboard');
like($r->{headers}{'content-security-policy'} // '', qr/default-src 'self'/,
    'with a content security policy');
# the panel token must not go to a WebSocket on another host: 'self' only
# (CSP Level 3 matches ws: and wss: on the page's own host and port)
like($r->{headers}{'content-security-policy'} // '',
    qr/(?:^|;\s*)connect-src 'self'(?:;|$)/,
    'which lets the page connect to its own origin only');
is($r->{headers}{'x-content-type-options'}, 'nosniff', 'nosniff');
is($r->{headers}{'cache-control'}, 'no-cache', 'revalidated');

for my $f (['app.js', qr{^text/javascript}], ['view.js', qr{^text/javascript}],
    ['style.css', qr{^text/css}])
{
    my $x = $t->http_get("/amonitor/$f->[0]");
    is($x->{code}, 200, "$f->[0] is served");
    like($x->{headers}{'content-type'}, $f->[1], "$f->[0] media type");
    my $src = do {
        local $/;
        open(my $fh, '<', "$FindBin::Bin/../dashboard/$f->[0]") or die $!;
        <$fh>;
    };
    is($x->{body}, $src, "$f->[0] is the file under dashboard/");
}

for my $bad ('/amonitor/.hidden', '/amonitor/nope.js', '/amonitor/sub/app.js',
    '/amonitor/%2e%2e/etc', '/amonitor/a%00b', '/amonitor/a%20b')
{
    like($t->http_get($bad)->{code}, qr/^40[04]$/, "$bad is not served");
}

is($t->http('POST', '/amonitor/app.js')->{code}, 405, 'POST is 405');
is($t->http('HEAD', '/amonitor/app.js')->{code}, 200, 'HEAD is 200');

$r = $t->http_get('/dash');
is($r->{code}, 301, 'a prefix location without a slash is redirected');
like($r->{headers}{location} // '', qr{/dash/$}, 'to its slash');
like($t->http_get('/dash/')->{body}, qr{app\.js}, 'then serves the index');
is($t->http_get('/dash/app.js')->{code}, 200, 'and the files under it');

$r = $t->http_get('/custom/');
is($r->{body}, "<p>custom</p>\n", 'amonitor_dashboard_root: its index.html');
like($r->{headers}{'content-security-policy'} // '',
    qr/(?:^|;\s*)connect-src 'self'(?:;|$)/, 'with the same policy');
$r = $t->http_get('/custom/logo.svg');
is($r->{code}, 200, 'a file of its own');
like($r->{headers}{'content-type'}, qr{^image/svg\+xml}, 'typed by suffix');
is($t->http_get('/custom/app.js')->{code}, 404,
    'the built-in files are not mixed in');

$t->stop;
done_testing;
