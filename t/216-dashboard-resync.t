# The built-in dashboard across reconnects and hostile data, in headless
# Chromium: after a reconnect the table is the agent's again (a target a
# reload removed goes, with its choices, and an event filter on it is
# let go); an action whose answer was lost with the connection is asked
# for (action_status) and shown; a token the agent no longer takes
# brings the token field back; a set in ?targets= that the handshake
# refuses does not lock the page out (it is asked for with a subscribe
# once in); a page that is left closes its connection; extreme metric
# values draw a sparkline without NaN, large heartbeats are cut to what
# a row can show, and nested values read as JSON.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Browser;
use Mojo::JSON qw(encode_json);

Test::AMonitor::Browser::chromium();    # or the test fails here

my $t = Test::AMonitor->new(workers => 1, panel_snapshot => 1);
my $sa = fake_sdk(port => $t->port(1), target_id => 'rs-a',
    heartbeat_interval => 0,
    actions => { restart => [1, 'restarted after all'] });
my $sb = fake_sdk(port => $t->port(2), target_id => 'rs-b',
    heartbeat_interval => 0);

# the panel location refuses a handshake with ?targets=, as the agent
# does a set it cannot take: the page must get in without it
sub config {
    my ($token, $with_b) = @_;
    my $b = $with_b ? 'amonitor_target rs-b ws://127.0.0.1:%%PORT_2%%/;' : '';
    $t->write_config(
        http_config => <<"EOC",
    amonitor_zone amon 1m;
    amonitor_target rs-a ws://127.0.0.1:%%PORT_1%%/;
    $b
    amonitor_reconnect 50ms 300ms;
    amonitor_ack_timeout 30s;
EOC
        config => <<"EOC",
        location = /ws/panel {
            if (\$arg_targets) { return 400; }
            amonitor_panel on;
            amonitor_panel_token $token;
        }
        location = /amonitor/status { amonitor_status; }
        location = /metrics { amonitor_metrics; }
        location /amonitor/ { amonitor_dashboard on; }
EOC
    );
}
config('tok1', 1);
$t->run;
ok($sa->wait_connections(1) && $sb->wait_connections(1),
    'the agent dialed both SDKs');

my $br = Test::AMonitor::Browser->start;
sub js { $br->js(@_) }
sub js_until { $br->js_until(@_) }

my $BASE = 'http://127.0.0.1:' . $t->port(0) . '/amonitor/';
my $CONN = q{document.getElementById('conn').textContent};
my $row = sub { "document.querySelector('tr[data-target=\"$_[0]\"]')" };
my $option = sub { "[...document.getElementById('$_[0]').options]"
    . ".some(o => o.value === '$_[1]')" };

$br->open_page("${BASE}?token=tok1");
ok(js_until("$CONN === 'connected'"), 'the dashboard connected');
ok(js_until($row->('rs-a') . ' && ' . $row->('rs-b')), 'both targets shown');

# --- an action whose ack would go to a connection that is gone -------------

$sa->set(ack_delay => tscale(2));
js(q{document.getElementById('a-target').value = 'rs-a';
     document.getElementById('a-name').value = 'restart';
     document.querySelector('#action button[type=submit]').click(); 1});
my $line = q{(document.querySelector('#outcomes li .outcome') || {})
    .textContent || ''};
ok(js_until("$line.startsWith('#1 sent, waiting')"), 'an action is sent');
ok(wait_for(sub { scalar($sa->actions) == 1 }, 10), 'and reached the SDK');

# the event filter on rs-b: rs-a's events are hidden for now
js(q{const f = document.getElementById('f-target'); f.value = 'rs-b';
     f.dispatchEvent(new Event('change')); 1});
$sa->heartbeat;
ok(js_until(q{document.querySelector('#events li[data-target="rs-a"]')}),
    'an event of rs-a arrived');
ok(js(q{[...document.querySelectorAll('#events li[data-target="rs-a"]')]
    .every(e => e.hidden)}), 'hidden by the filter on rs-b');

# a reload that removes rs-b: the panel is closed (1012) and reconnects
config('tok1', 0);
ok($t->reload, 'nginx reloaded without rs-b');
ok(js_until("/ \\(asked after reconnecting\\)\$/.test($line)", 20),
    'the lost answer was asked for after reconnecting')
    or diag('line: ' . (js($line) // ''));
like(js($line), qr/^(?:ack:\ success\ \W+\ restarted\ after\ all
    |error\ [A-Z_]+:\ .+)\ \(asked\ after\ reconnecting\)$/x,
    'and shown: the ack, or the error the agent stored');
is(scalar($sa->actions), 1, 'the action ran once');

ok(js_until('!' . $row->('rs-b'), 15), 'rs-b, gone from the agent, left the table');
ok(js($row->('rs-a')), 'rs-a stays');
ok(!js($option->('a-target', 'rs-b')) && !js($option->('f-target', 'rs-b')),
    'and the choices of rs-b went');
is(js(q{document.getElementById('f-target').value}), '',
    'the event filter on it is let go');
ok(js(q{[...document.querySelectorAll('#events li[data-target="rs-a"]')]
    .some(e => !e.hidden)}), "so rs-a's events show again");

# --- hostile and large heartbeats --------------------------------------------

$sa->set(metrics => { cpu_percent => '1.7e308' });
$sa->heartbeat;
$sa->set(metrics => { cpu_percent => '-1.7e308' });
$sa->heartbeat;
my $points = $row->('rs-a') . ".querySelector('polyline').getAttribute('points')";
ok(js_until($row->('rs-a') . ".querySelector('svg').getAttribute('data-points')"
    . " >= 2"), 'the extreme values are drawn');
unlike(js($points) // 'NaN', qr/NaN|Infinity/, 'with numbers only')
    or diag(js($points));

my %many = map { sprintf('m%03d', $_) => "$_" } 1 .. 120;
$many{long} = 'x' x 5000;
$many{nested} = { a => 1 };
$sa->set(metrics => \%many);
$sa->heartbeat;
my $metrics = $row->('rs-a') . ".querySelector('.metrics')";
ok(js_until("$metrics.textContent.includes('more')"), 'a large heartbeat');
is(js("$metrics.querySelectorAll('span:not(.note)').length"), 50,
    'shows 50 metrics in its row');
like(js("$metrics.querySelector('.note').textContent"), qr/^\x{2026} 73 more$/,
    'and counts the rest (120, long, nested and seq: 73 not shown)');
ok(js("Math.max(...[...$metrics.querySelectorAll('span')]"
    . '.map(s => s.textContent.length)) <= 260'),
    'no value is shown longer than 200 characters');
ok(js(q{document.getElementById('targets').scrollWidth <= 1400}),
    'the table keeps its width') or diag(js(q{document.getElementById(
    'targets').scrollWidth}));
$sa->set(metrics => { nested => { a => 1 }, cpu_percent => '3' });
$sa->heartbeat;
ok(js_until(q{[...document.querySelectorAll('#events li')].some(e =>
    e.textContent.includes('nested={"a":1}'))}),
    'a nested value reads as JSON in the events list');
ok(!js(q{document.getElementById('events').textContent
    .includes('[object Object]')}), 'never as [object Object]');

# --- a token the agent no longer takes ------------------------------------------

config('tok2', 0);
ok($t->reload, 'nginx reloaded with another token');
ok(js_until(q{!document.getElementById('login').hidden}, 20),
    'the token field is back') or diag(js($CONN));
like(js($CONN), qr/refused the panel token/, 'and the page says why');
js(q{document.getElementById('token').value = 'tok2';
     document.querySelector('#login button').click(); 1});
ok(js_until("$CONN === 'connected'", 15), 'the new token connects');

# --- a set in the URL that the handshake refuses ------------------------------

$br->open_page("${BASE}?token=tok2&targets=rs-a");
ok(js_until("$CONN === 'connected'", 20),
    'a page whose ?targets= the handshake refuses still gets in');
ok(js_until(q{document.getElementById('show-note').textContent
    === 'Showing rs-a.'}, 10), 'and asks for its set once in')
    or diag(js(q{document.getElementById('show-note').textContent}));

$br->open_page("${BASE}?token=tok2&targets=a%01b");
ok(js_until("$CONN === 'connected'"), 'a set with a control character');
like(js(q{document.getElementById('show-note').textContent}),
    qr/^\?targets= not used \(.*control characters\); showing every target\.$/,
    'is not used, and the page says why');

# --- a page that is left closes its connection ------------------------------------

ok(wait_for(sub { $t->metric('amonitor_panels') == 1 }, 10),
    'one panel connected') or diag($t->metric('amonitor_panels'));
$br->cdp('Page.navigate', { url => 'about:blank' });
ok(wait_for(sub { $t->metric('amonitor_panels') == 0 }, 10),
    'none once the page is left') or diag($t->metric('amonitor_panels'));

$br->no_errors;

$br->stop;
$t->stop;
done_testing;
