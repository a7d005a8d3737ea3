<#
.SYNOPSIS
Put Studio Bridge's Ardour Lua scripts in Ardour's user scripts folder.

.DESCRIPTION
Windows: %LOCALAPPDATA%\Ardour7\scripts and %LOCALAPPDATA%\Ardour8\scripts, for each Ardour
you have set up (both when neither is yet). On Linux (~/.config/ardour7/scripts,
~/.config/ardour8/scripts) and macOS (~/Library/Preferences/Ardour7/scripts, Ardour8) use
install-ardour-scripts.sh, which takes the same options.

The scripts are templates (hosts\ardour\lua\) that hosts\ardour\install.py renders with the
checkout's Python: shared code and the relay's port are baked into each.
Safe to run again: unchanged files are left alone. A copy you have edited is never
replaced without -Force (what was installed is recorded, with checksums, in
.studio-bridge-installed in each scripts folder).

.PARAMETER Dest
Install into this scripts folder instead.

.PARAMETER Port
The relay's UDP port baked into the scripts (default: the relay's own default).

.PARAMETER Uninstall
Remove what this installed (copies you changed stay unless -Force).

.PARAMETER Force
Also replace (or, with -Uninstall, remove) copies you have changed.

.EXAMPLE
powershell -ExecutionPolicy Bypass -File installers\install-ardour-scripts.ps1
.EXAMPLE
powershell -ExecutionPolicy Bypass -File installers\install-ardour-scripts.ps1 -Uninstall
#>
[CmdletBinding()]
param(
    [string]$Dest = "",
    [int]$Port = 0,
    [switch]$Force,
    [switch]$Uninstall
)
$ErrorActionPreference = "Stop"
Set-StrictMode -Version 3

$Root = (Resolve-Path (Join-Path $PSScriptRoot "..")).Path  # the checkout
$Source = Join-Path $Root "hosts\ardour"
$ManifestName = ".studio-bridge-installed"
$Utf8 = New-Object System.Text.UTF8Encoding $false

function Fail([string]$Message) { [Console]::Error.WriteLine("install-ardour-scripts.ps1: $Message"); exit 2 }

# Get-Sum, Install-Into, Uninstall-From: shared with the other DAW installer.
. (Join-Path $PSScriptRoot "lib\manifest.ps1")

# -- Ardour --------------------------------------------------------------------------
if ($Dest) {
    $Dests = @($Dest)
} else {
    $found = @("Ardour7", "Ardour8" | Where-Object { Test-Path -LiteralPath (Join-Path $env:LOCALAPPDATA $_) })
    # Neither set up yet: both, so whichever Ardour starts first finds them.
    if ($found.Count -eq 0) { $found = @("Ardour7", "Ardour8") }
    $Dests = @($found | ForEach-Object { Join-Path (Join-Path $env:LOCALAPPDATA $_) "scripts" })
}

if ($Uninstall) {
    foreach ($d in $Dests) { Uninstall-From $d }
    exit 0
}

if (-not (Test-Path -LiteralPath (Join-Path $Source "install.py"))) {
    Fail "no Ardour scripts at $Source (run this from a Studio Bridge checkout)"
}
$Python = $env:PYTHON
if (-not $Python) {
    $venv = Join-Path $Root ".venv\Scripts\python.exe"
    $Python = if (Test-Path -LiteralPath $venv) { $venv } else { "python" }
}

$Stage = Join-Path ([System.IO.Path]::GetTempPath()) ("studio-bridge-install-" + [guid]::NewGuid())
New-Item -ItemType Directory -Path $Stage | Out-Null
try {
    # hosts\ardour\install.py writes the rendered scripts into <dir>\scripts and names them.
    $render = @'
import sys
from pathlib import Path

root, out, port = sys.argv[1:4]
sys.path.insert(0, root)
from hosts.ardour.install import DEFAULT_PORT, install

for path in install(Path(out), int(port) if int(port) else DEFAULT_PORT):
    print(path.name)
'@
    $Files = @($render | & $Python - $Root $Stage "$Port" | Sort-Object)
    if ($LASTEXITCODE -ne 0 -or $Files.Count -eq 0) {
        Fail "could not render the scripts with $Python (set `$env:PYTHON)"
    }
    foreach ($d in $Dests) { Install-Into $d (Join-Path $Stage "scripts") $Files }
} finally {
    Remove-Item -Recurse -Force -LiteralPath $Stage
}

Write-Host ""
Write-Host "Ardour scripts are in:"
foreach ($d in $Dests) { Write-Host "  $d" }
Write-Host "To use them (restart Ardour if it is running: it reads the folder when it starts):"
Write-Host "  Edit > Lua Scripts > Script Manager > Action Scripts: select a free slot, 'Add/Set',"
Write-Host "  and pick a 'Studio Bridge' action (Separate, Generate, Continue, Master); on the"
Write-Host "  Editor Hooks tab add 'Studio Bridge: Collect Results', which brings finished results in."
Write-Host "  Lua scripts must be allowed io/os: untick 'Sandbox all Lua scripts' (Preferences > General)"
Write-Host "  if it is ticked."
Write-Host "Installed:"
foreach ($name in $Files) { Write-Host "  $name" }
Write-Host "The scripts need the daemon and the relay running:"
Write-Host "  studio-bridge serve"
$portArg = if ($Port) { " --port $Port" } else { "" }
Write-Host "  $Python -m hosts.ardour.relay$portArg"
