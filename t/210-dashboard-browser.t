# The built-in dashboard (amonitor_dashboard on) in headless Chromium,
# driven over the DevTools protocol (a Mojolicious WebSocket client):
# the targets appear, a heartbeat updates the age and the sparkline, an
# SDK going down turns its row red, an action's ack appears, sending it
# again with the same msg_id shows "duplicate ignored", a restart of nginx
# is survived by reconnecting.  A screenshot is kept as an artefact
# (build/test-artefacts/dashboard.png); any JavaScript console error or
# uncaught exception fails the test.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Test::AMonitor;
use Test::AMonitor::Browser;
use File::Path qw(make_path);
use Mojo::JSON qw(decode_json encode_json);
use MIME::Base64 qw(decode_base64);

Test::AMonitor::Browser::chromium();    # or the test fails here

my $TOKEN = 'dash t0ken';
my $t = Test::AMonitor->new(workers => 2, panel_snapshot => 1);
my $sa = fake_sdk(port => $t->port(1), target_id => 'dash-a',
    heartbeat_interval => 0,
    actions => { restart => [1, 'restarted by the dashboard'] });
my $sb = fake_sdk(port => $t->port(2), target_id => 'dash-b',
    heartbeat_interval => 0);

$t->write_config(
    http_config => <<'EOC',
    amonitor_zone amon 1m;
    amonitor_target dash-a ws://127.0.0.1:%%PORT_1%%/;
    amonitor_target dash-b ws://127.0.0.1:%%PORT_2%%/;
    amonitor_reconnect 50ms 300ms;
EOC
    config => <<"EOC",
        location = /ws/panel { amonitor_panel on;
                               amonitor_panel_token "$TOKEN"; }
        location = /amonitor/status { amonitor_status; }
        location /amonitor/ { amonitor_dashboard on; }
EOC
)->run;

ok($sa->wait_connections(2) && $sb->wait_connections(2),
    'both workers dialed both SDKs');
$sa->set(metrics => { cpu_percent => '10', mem_mb => '40' });
$sa->heartbeat;

# --- the browser ---------------------------------------------------------

my $br = Test::AMonitor::Browser->start();
sub cdp { $br->cdp(@_) }
sub js { $br->js(@_) }
sub js_until { $br->js_until(@_) }
my $q = $TOKEN =~ s/ /%20/gr;
cdp('Page.navigate', { url => 'http://127.0.0.1:' . $t->port(0)
    . "/amonitor/?token=$q" });

ok(js_until(q{document.getElementById('conn').textContent === 'connected'}),
    'the dashboard connected to the panel endpoint with the token');

my $row = sub { "document.querySelector('tr[data-target=\"$_[0]\"]')" };
ok(js_until($row->('dash-a') . '&&' . $row->('dash-b')),
    'both targets appear');
ok(js_until($row->('dash-a') . ".className === 'state-up'"),
    'dash-a is up');
ok(js_until($row->('dash-a') . ".querySelector('.metrics').textContent"
    . ".includes('cpu_percent: 10')"), 'its metrics are shown');

# a heartbeat: the age restarts and the sparkline gets a point
my $points = sub { js($row->('dash-a')
    . ".querySelector('svg').getAttribute('data-points')") // 0 };
my $at = sub { js($row->('dash-a') . ".querySelector('.age').dataset.at") };
my ($p0, $a0) = ($points->(), $at->());
sleep_loop(1.1);
$sa->set(metrics => { cpu_percent => '55', mem_mb => '41' });
$sa->heartbeat;
ok(wait_for(sub { ($points->() // 0) > $p0 }, 10),
    "a heartbeat adds a sparkline point ($p0 before)");
ok(($at->() // 0) > ($a0 // 0), 'and moves the last heartbeat time');
like(js($row->('dash-a') . ".querySelector('.age').textContent"),
    qr/^\d+s ago$/, 'the age is shown in seconds');
ok(js($row->('dash-a') . ".querySelector('polyline').getAttribute('points')"
    . ".split(' ').length >= 2"), 'the sparkline has a line');

# an action and its ack, then the same msg_id again
js(q{document.getElementById('a-target').value = 'dash-a';
     document.getElementById('a-name').value = 'restart';
     document.querySelector('#action button[type=submit]').click(); 1});
ok(js_until(q{/^ack: success \W+ restarted by the dashboard$/.test(
    (document.querySelector('#outcomes li .outcome') || {}).textContent)}),
    "the action's ack appears");
js(q{document.querySelector('#outcomes li button').click(); 1});
ok(js_until(q{[...document.querySelectorAll('#outcomes li .outcome')]
    .some(e => e.textContent.startsWith('duplicate ignored (done)'))}),
    'the same msg_id again shows "duplicate ignored" with the state');
ok(js(q{document.querySelector('#outcomes .dup').textContent
    .includes('restarted by the dashboard')}),
    'and the original result');
is(scalar($sa->actions), 1, 'the SDK ran the action once');

# counters from amonitor_status
ok(js_until(q{(document.querySelector('[data-counter=duplicates] dd') || {})
    .textContent === '1'}, 10), 'the counters show the duplicate');

# the same msg_id again while the first attempt waits for its slow ack:
# the repeat's line says so, the first line gets the ack after it
$sa->set(ack_delay => tscale(2));
js(q{document.querySelector('#action button[type=submit]').click(); 1});
ok(js_until(q{(document.querySelector('#outcomes li .outcome') || {})
    .textContent.startsWith('#1 sent, waiting')}), 'a second action is sent');
js(q{document.querySelector('#outcomes li button').click(); 1});
my $lines = q{[...document.querySelector('#outcomes li')
    .querySelectorAll('.outcome')].map(e => e.textContent)};
ok(js_until("$lines\[1] === 'duplicate ignored (pending) \\u2014 the "
    . "first attempt\\'s answer follows'"),
    'its repeat while the first is pending: the answer follows');
ok(js_until("/^ack: success \\W+ restarted/.test($lines\[0])", 10),
    'then the first attempt\'s ack, on its own line');
is(js("$lines\[1]"),
    "duplicate ignored (pending) \x{2014} the first attempt's answer follows",
    'the repeat\'s line is left as it was');
$sa->set(ack_delay => 0);

# an SDK going down turns its row red
$sb->stop;
ok(js_until($row->('dash-b') . ".className === 'state-down'"),
    'dash-b goes down');
my $bg = js('getComputedStyle(' . $row->('dash-b') . ').backgroundColor');
my ($r, $g, $b) = ($bg // '') =~ /(\d+),\s*(\d+),\s*(\d+)/;
ok(defined $r && $r > $g && $r > $b, "and its row is red ($bg)");

# the event stream with a filter
js(q{document.getElementById('f-type').value = 'action_ack';
     document.getElementById('f-type').dispatchEvent(new Event('change')); 1});
ok(js(q{[...document.querySelectorAll('#events li')].filter(e => !e.hidden)
    .every(e => e.dataset.type === 'action_ack')}),
    'the type filter leaves only acks');
js(q{document.getElementById('f-type').value = '';
     document.getElementById('f-type').dispatchEvent(new Event('change')); 1});

# save the screenshot as the test's artefact
my $shot = cdp('Page.captureScreenshot', { format => 'png' });
my $dir = "$FindBin::Bin/../build/test-artefacts";
make_path($dir);
if ($shot && $shot->{data}) {
    for my $f ("$dir/dashboard.png", $t->prefix . '/dashboard.png') {
        open(my $fh, '>:raw', $f) or die "$f: $!";
        print $fh decode_base64($shot->{data});
        close $fh;
    }
}
ok(-s "$dir/dashboard.png", 'a screenshot was saved');

# a restart of nginx: the dashboard says so and reconnects
$t->stop;
ok(js_until(q{/reconnecting/.test(document.getElementById('conn')
    .textContent)}), 'the dashboard says it is reconnecting');
$t->run;
ok(js_until(q{document.getElementById('conn').textContent === 'connected'},
    20), 'and reconnects to the restarted nginx');
ok(js_until($row->('dash-a') . ".className === 'state-up'", 10),
    'the snapshot after reconnecting shows dash-a up');

$br->no_errors;
note("network log (refused WebSocket connects while nginx was down): "
    . scalar($br->network));

$br->stop;
$t->stop;
done_testing;
