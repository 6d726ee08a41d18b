# polyvisor WinRM-shell request runner. This text is fixed: it never contains a user value.
# The request arrives on stdin as base64(UTF-8 JSON):
#   {"steps": [{"command": "Get-VM", "parameters": {"Id": "..."}, "bytes": {"Value": "<base64>"} | null,
#               "pipeInput": false}, ...],
#    "select": ["Name", "Id", ...] | null}
# "bytes" holds byte[] parameters as base64 text, decoded here into byte arrays: data, never PowerShell source.
# A step with "script" instead of "command" is one of the backend's fixed scripts (constant text, no value in it):
# it becomes a script block whose param() block takes the step's parameters, splatted as a cmdlet's are.
# Steps run in order; a step with pipeInput receives the previous step's output on its pipeline.
# The reply goes to stdout as base64(UTF-8 JSON): {"ok": bool, "output": [...], "error": {...} | null}.
# With "select", enum properties are sent by name (as PSRP sends them), never by number.
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$payload = [Console]::In.ReadToEnd()
$request = [System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String($payload.Trim())) | ConvertFrom-Json
$response = [ordered]@{ ok = $true; output = @(); error = $null }
try {
    $results = @()
    foreach ($step in $request.steps) {
        $arguments = @{}
        if ($null -ne $step.parameters) {
            foreach ($property in $step.parameters.PSObject.Properties) {
                $arguments[$property.Name] = $property.Value
            }
        }
        if ($null -ne $step.bytes) {
            foreach ($property in $step.bytes.PSObject.Properties) {
                $arguments[$property.Name] = [System.Convert]::FromBase64String($property.Value)
            }
        }
        if ($null -ne $step.script) {
            $command = [System.Management.Automation.ScriptBlock]::Create($step.script)
        } else {
            $command = $step.command
        }
        if ($step.pipeInput) {
            $results = @($results | & $command @arguments)
        } else {
            $results = @(& $command @arguments)
        }
    }
    if ($null -ne $request.select) {
        $results = @($results | Select-Object -Property $request.select)
        # Enums go by name, as PSRP sends them: 5.1's ConvertTo-Json would write numbers, which differ by release.
        foreach ($row in $results) {
            foreach ($property in $row.PSObject.Properties) {
                if ($property.Value -is [System.Enum]) { $property.Value = $property.Value.ToString() }
            }
        }
    }
    $response.output = $results
} catch {
    $record = $_
    $response.ok = $false
    $response.error = [ordered]@{
        message = $record.Exception.Message
        exceptionType = $record.Exception.GetType().FullName
        category = $record.CategoryInfo.Category.ToString()
        fullyQualifiedErrorId = $record.FullyQualifiedErrorId
        targetName = $record.CategoryInfo.TargetName
    }
}
$json = ConvertTo-Json -InputObject $response -Depth 6 -Compress
[Console]::Out.Write([System.Convert]::ToBase64String([System.Text.Encoding]::UTF8.GetBytes($json)))
